import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import OnceStorage

/// What the broker takes from the world around it: time, randomness, somewhere to run its tasks,
/// its timers and the threads that may block on a disk. Production passes the defaults (the wall
/// clock, the system generator, the global concurrent executor, NIO's timers, a bounded pool of
/// I/O threads); the simulator passes its seeded clock and generator and one single-threaded job
/// queue that is the executor and the timers, with blocking I/O run inline, so a run depends on
/// its seed alone and replays exactly.
///
/// The concurrency model, one for every acknowledgement: a request is handled synchronously on its
/// connection's event loop until it must wait (a coordinator's durability wait, a KIP-890
/// verification before an append, a group write's sync, a topic's file work); the rest of its
/// work is one task, started by `task(on:_:)` on `taskExecutor`, whose result completes the
/// request's EventLoopFuture, which the connection writes in request order. Futures stay at the
/// edge because the connection pipeline is NIO's; tasks do the waiting because the coordinators'
/// rules read as straight-line code that awaits storage. Blocking disk work (fsync under
/// `--flush always`, index writes, creating and deleting topics' files, snapshots, retention)
/// runs on `io` or, one at a time, on `administration`: bounded pools of named threads that only
/// complete continuations, so the awaiting task resumes on `taskExecutor`, never on the pool's
/// thread. A pool rather than an engine-owned thread per partition because fsyncs of many
/// partitions overlap on a disk, the number of threads stays a named limit (`--io-threads`), and
/// a networked engine awaits its own client the same way. Appending to the page cache (pwrite)
/// stays synchronous in the append: it is a copy, and a hop per batch would cost the produce path
/// more than the write itself.
///
/// Every timer of the broker goes through `schedule(afterMs:on:_:)` and the repeating forms built
/// on it (the group coordinator's ticks, retention, snapshots, producer expiry, transaction
/// timeouts, the cluster heartbeat, Fetch's long poll, the SASL failure delay, the KIP-848
/// heartbeat linger), so under simulation each is a job of the same seeded queue firing at
/// simulated time. The connection's request-read timeout and TLS handshake deadline stay NIO
/// channel timers: they guard a socket, belong to its pipeline, and the simulator has no socket.
public struct BrokerRuntime: Sendable {
    /// Milliseconds since the epoch: every handler, coordinator and timer reads time here.
    public var clock: @Sendable () -> Int64
    /// Member ids and anything else the broker draws at random.
    public var random: RandomSource
    /// Where the broker's tasks run; nil is the global concurrent executor.
    public var taskExecutor: (any TaskExecutor)?
    /// Where the broker's timers fire.
    public var timers: any BrokerTimers
    /// The threads blocking disk work runs on (fsyncs, snapshots, retention).
    public var io: BlockingIO
    /// One thread for topic creation and deletion: one at a time, which also makes the
    /// broker-wide partition limit exact.
    public var administration: BlockingIO
    /// How requests reach the other brokers of a cluster. Nil in production: the broker opens its
    /// `InterBrokerClient` over the inter-broker listener. The cluster simulator passes its
    /// simulated network between the brokers.
    var interBroker: (any InterBrokerTransport)?

    public init(
        clock: @escaping @Sendable () -> Int64 = { Clock.nowMilliseconds() }, random: RandomSource = .system,
        taskExecutor: (any TaskExecutor)? = nil, timers: any BrokerTimers = EventLoopTimers(),
        io: BlockingIO = .shared, administration: BlockingIO = .threads(BrokerRuntime.sharedAdministrationThread)
    ) {
        self.clock = clock
        self.random = random
        self.taskExecutor = taskExecutor
        self.timers = timers
        self.io = io
        self.administration = administration
    }

    /// The administration thread of brokers that do not bring their own (tests, tools).
    public static let sharedAdministrationThread: NIOThreadPool = {
        let pool = NIOThreadPool(numberOfThreads: 1)
        pool.start()
        return pool
    }()

    /// Runs `body` as a task on the injected executor and completes the returned future with its
    /// result on `eventLoop`.
    func task<T: Sendable>(
        on eventLoop: any EventLoop, _ body: @escaping @Sendable () async throws -> T
    ) -> EventLoopFuture<T> {
        let promise = eventLoop.makePromise(of: T.self)
        run {
            do {
                promise.succeed(try await body())
            } catch {
                promise.fail(error)
            }
        }
        return promise.futureResult
    }

    /// Starts `body` on the injected executor, the one place the broker starts a task.
    func run(_ body: @escaping @Sendable () async -> Void) {
        Task(executorPreference: taskExecutor) { await body() }
    }

    /// Runs `work` once after `delayMs` of the runtime's clock, on `eventLoop` when given.
    @discardableResult
    func schedule(afterMs delayMs: Int64, on eventLoop: (any EventLoop)? = nil, _ work: @escaping @Sendable () -> Void)
        -> BrokerTimer
    {
        timers.schedule(afterMs: max(0, delayMs), on: eventLoop, work)
    }

    /// Suspends the calling task for `delayMs` of the runtime's clock (simulated time in the
    /// simulator, where `Task.sleep` would wait on the wall clock).
    func sleep(ms delayMs: Int64) async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            schedule(afterMs: delayMs) { continuation.resume() }
        }
    }

    /// A future on `eventLoop` that succeeds with `value` after `delayMs`.
    func delayed<T: Sendable>(_ value: T, afterMs delayMs: Int64, on eventLoop: any EventLoop) -> EventLoopFuture<T> {
        let promise = eventLoop.makePromise(of: T.self)
        schedule(afterMs: delayMs, on: eventLoop) { promise.succeed(value) }
        return promise.futureResult
    }

    /// Runs `work` every `intervalMs`, each run counted from the end of the one before, as NIO's
    /// repeated tasks: a slow run delays the next instead of piling runs up.
    func repeating(everyMs intervalMs: Int64, _ work: @escaping @Sendable () -> Void) -> BrokerTimer {
        repeatingTask(everyMs: intervalMs, synchronous: work, nil)
    }

    /// `repeating` for work that awaits: the next run is scheduled once the task finishes.
    func repeatingTask(everyMs intervalMs: Int64, _ work: @escaping @Sendable () async -> Void) -> BrokerTimer {
        repeatingTask(everyMs: intervalMs, synchronous: nil, work)
    }

    private func repeatingTask(
        everyMs intervalMs: Int64, synchronous: (@Sendable () -> Void)?, _ asynchronous: (@Sendable () async -> Void)?
    ) -> BrokerTimer {
        let state = NIOLockedValueBox<(cancelled: Bool, current: BrokerTimer?)>((false, nil))
        let runtime = self
        @Sendable func arm() {
            let timer = runtime.schedule(afterMs: intervalMs) {
                guard !state.withLockedValue({ $0.cancelled }) else { return }
                if let synchronous {
                    synchronous()
                    arm()
                } else if let asynchronous {
                    runtime.run {
                        await asynchronous()
                        arm()
                    }
                }
            }
            let cancelled = state.withLockedValue { s in
                if !s.cancelled { s.current = timer }
                return s.cancelled
            }
            if cancelled { timer.cancel() }
        }
        arm()
        return BrokerTimer {
            let current = state.withLockedValue { s in
                s.cancelled = true
                defer { s.current = nil }
                return s.current
            }
            current?.cancel()
        }
    }
}

/// Something that fires work after a delay: NIO's event loops in production, the simulator's
/// seeded queue (at simulated time) under simulation.
public protocol BrokerTimers: Sendable {
    /// Runs `work` once, `delayMs` from now, unless cancelled first: on `eventLoop` when given (a
    /// request's timer completes that request's future there), otherwise where the implementation
    /// runs the broker's own periodic work.
    func schedule(afterMs delayMs: Int64, on eventLoop: (any EventLoop)?, _ work: @escaping @Sendable () -> Void)
        -> BrokerTimer
}

/// A scheduled timer; cancelling one that already fired does nothing.
public struct BrokerTimer: Sendable {
    private let cancelAction: @Sendable () -> Void

    public init(cancel: @escaping @Sendable () -> Void) {
        cancelAction = cancel
    }

    public func cancel() {
        cancelAction()
    }
}

/// Production's timers: NIO's, on the request's event loop or, for the broker's periodic work, on
/// a loop of `group`. NIO measures the delay on its monotonic clock, which in production advances
/// with the wall clock the runtime reads.
public struct EventLoopTimers: BrokerTimers {
    let group: any EventLoopGroup

    public init(group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) {
        self.group = group
    }

    public func schedule(afterMs delayMs: Int64, on eventLoop: (any EventLoop)?, _ work: @escaping @Sendable () -> Void)
        -> BrokerTimer
    {
        let scheduled = (eventLoop ?? group.next()).scheduleTask(in: .milliseconds(delayMs)) { work() }
        return BrokerTimer { scheduled.cancel() }
    }
}
