import Logging
import NIOConcurrencyHelpers

/// What every partition of one `FileLogStorage` shares: the flush policy, the logger, the cache of
/// open segment descriptors, and the broker's blocking-I/O threads that run disk work (fsync,
/// index writes) away from NIO event loops and Swift's cooperative pool.
final class FileStorageRuntime: Sendable {
    let flushPolicy: FlushPolicy
    let logger: Logger
    let files: FileHandleCache
    private let io: BlockingIO
    /// Background jobs submitted and not yet finished, so `close` can wait for them.
    private let pending = ConditionLock<Int>(value: 0)

    init(flushPolicy: FlushPolicy, maxOpenFiles: Int, logger: Logger, io: BlockingIO) {
        self.flushPolicy = flushPolicy
        self.logger = logger
        self.files = FileHandleCache(capacity: maxOpenFiles)
        self.io = io
    }

    func background(_ work: @escaping @Sendable () -> Void) {
        pending.lock()
        pending.unlock(withValue: pending.value + 1)
        io.submit { [pending] in
            work()
            pending.lock()
            pending.unlock(withValue: pending.value - 1)
        }
    }

    /// Blocks until every background job submitted so far has finished.
    func waitForBackgroundWork() {
        pending.lock(whenValue: 0)
        pending.unlock()
    }
}
