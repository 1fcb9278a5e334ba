import NIOPosix

/// Where blocking disk work (fsync, index writes, whole-topic file work) runs: a bounded pool of
/// named threads that never runs anything else, so neither an event loop nor Swift's cooperative
/// pool ever blocks on a disk. The broker owns one (`--io-threads`) and gives it to its engine.
/// Work submitted here only completes continuations; the task that awaited one resumes on its own
/// executor (the broker runtime's), never on the pool's thread. The simulator passes `inline`,
/// which runs the work in the job that asked for it, so a seed still decides every interleaving.
public struct BlockingIO: Sendable {
    private let submitWork: @Sendable (@escaping @Sendable () -> Void) -> Void

    public init(submit: @escaping @Sendable (@escaping @Sendable () -> Void) -> Void) {
        submitWork = submit
    }

    /// The pool's threads. A pool that is shutting down still runs the work (on the thread that
    /// hands it over): a durability waiter must never be left unresumed.
    public static func threads(_ pool: NIOThreadPool) -> BlockingIO {
        BlockingIO { work in pool.submit { _ in work() } }
    }

    /// NIO's process-wide pool, for engines opened outside a broker (tools, tests).
    public static var shared: BlockingIO { .threads(.singleton) }

    /// Runs the work where it is asked for: the simulator's single-threaded scheduler.
    public static let inline = BlockingIO { $0() }

    /// Runs `work` on the pool without waiting for it.
    public func submit(_ work: @escaping @Sendable () -> Void) {
        submitWork(work)
    }

    /// Runs `work` on the pool; the caller resumes on its own executor with the result.
    public func perform<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            submitWork { continuation.resume(with: Result { try work() }) }
        }
    }
}
