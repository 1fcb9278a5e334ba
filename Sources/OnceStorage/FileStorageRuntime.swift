import Foundation
import Logging

/// What every partition of one `FileLogStorage` shares: the flush policy, the logger, the cache of
/// open segment descriptors, and the broker's blocking-I/O threads that run disk work (fsync,
/// index writes) away from NIO event loops and Swift's cooperative pool.
final class FileStorageRuntime: Sendable {
    let flushPolicy: FlushPolicy
    let logger: Logger
    let files: FileHandleCache
    private let io: BlockingIO
    /// Background jobs submitted and not yet finished, so `close` can wait for them.
    private let pending = PendingWork()

    init(flushPolicy: FlushPolicy, maxOpenFiles: Int, logger: Logger, io: BlockingIO) {
        self.flushPolicy = flushPolicy
        self.logger = logger
        self.files = FileHandleCache(capacity: maxOpenFiles)
        self.io = io
    }

    func background(_ work: @escaping @Sendable () -> Void) {
        pending.started()
        io.submit { [pending] in
            work()
            pending.finished()
        }
    }

    /// Blocks until every background job submitted so far has finished.
    func waitForBackgroundWork() {
        pending.waitUntilNone()
    }
}

/// A count of jobs in flight that a closing engine can wait to reach zero.
private final class PendingWork: @unchecked Sendable {
    // `count` is only touched with `condition` locked.
    private let condition = NSCondition()
    private var count = 0

    func started() {
        condition.lock()
        count += 1
        condition.unlock()
    }

    func finished() {
        condition.lock()
        count -= 1
        if count == 0 { condition.broadcast() }
        condition.unlock()
    }

    func waitUntilNone() {
        condition.lock()
        while count > 0 { condition.wait() }
        condition.unlock()
    }
}
