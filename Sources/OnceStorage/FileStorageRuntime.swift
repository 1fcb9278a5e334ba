import Dispatch
import Logging

/// What every partition of one `FileLogStorage` shares: the flush policy, the logger, the cache of
/// open segment descriptors, and the threads that run blocking disk work (fsync, index writes) away from NIO event loops and Swift's
/// cooperative pool.
final class FileStorageRuntime: Sendable {
    let flushPolicy: FlushPolicy
    let logger: Logger
    let files: FileHandleCache
    private let queue = DispatchQueue(label: "once.storage.io", attributes: .concurrent)
    private let pending = DispatchGroup()

    init(flushPolicy: FlushPolicy, maxOpenFiles: Int, logger: Logger) {
        self.flushPolicy = flushPolicy
        self.logger = logger
        self.files = FileHandleCache(capacity: maxOpenFiles)
    }

    func background(_ work: @escaping @Sendable () -> Void) {
        queue.async(group: pending, execute: work)
    }

    /// Blocks until every background job submitted so far has finished.
    func waitForBackgroundWork() {
        pending.wait()
    }
}
