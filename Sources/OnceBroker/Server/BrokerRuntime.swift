import NIOCore
import OnceStorage

/// What the broker takes from the world around it: time, randomness and somewhere to run
/// asynchronous work. Production passes the defaults (the wall clock, the system generator, the
/// global concurrent executor); the simulator passes its seeded clock, generator and one
/// single-threaded job queue, so a run depends on its seed alone and replays exactly.
///
/// The concurrency model: a request is handled synchronously on its connection's event loop
/// until it must wait (a coordinator's durability wait, a KIP-890 verification before an append,
/// a group write's sync); the rest of its work is one task, started by `task(on:_:)` on
/// `taskExecutor`, whose result completes the request's EventLoopFuture, which the connection
/// writes in request order. Futures stay at the edge because the connection pipeline is NIO's;
/// tasks do the waiting because the coordinators' rules read as straight-line code that awaits
/// storage. Every task the broker starts goes through `task(on:_:)`, so one injected executor sees
/// all of them. Timers (the group coordinator's session and retention ticks, fetch long polls,
/// the heartbeat linger, the SASL close delay, the service's periodic jobs) are scheduled on an
/// event loop, the request's or the service's, so under simulation they are jobs of the same
/// queue. What does not yet follow the model: on an ack's path under `--flush always` the file
/// engine's durability wait resumes the task from the engine's own Dispatch queue (a
/// continuation), and topic administration runs on a Dispatch queue of its own; neither is on
/// the memory engine's path the simulator runs, so those interleavings are not explored.
public struct BrokerRuntime: Sendable {
    /// Milliseconds since the epoch: every handler, coordinator and timer reads time here.
    public var clock: @Sendable () -> Int64
    /// Member ids and anything else the broker draws at random.
    public var random: RandomSource
    /// Where the broker's tasks run; nil is the global concurrent executor.
    public var taskExecutor: (any TaskExecutor)?

    public init(
        clock: @escaping @Sendable () -> Int64 = { Clock.nowMilliseconds() }, random: RandomSource = .system,
        taskExecutor: (any TaskExecutor)? = nil
    ) {
        self.clock = clock
        self.random = random
        self.taskExecutor = taskExecutor
    }

    /// Runs `body` as a task on the injected executor and completes the returned future with its
    /// result on `eventLoop`.
    func task<T: Sendable>(
        on eventLoop: any EventLoop, _ body: @escaping @Sendable () async throws -> T
    ) -> EventLoopFuture<T> {
        let promise = eventLoop.makePromise(of: T.self)
        Task(executorPreference: taskExecutor) {
            do {
                promise.succeed(try await body())
            } catch {
                promise.fail(error)
            }
        }
        return promise.futureResult
    }
}
