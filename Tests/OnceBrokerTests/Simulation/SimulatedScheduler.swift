import Dispatch
import NIOConcurrencyHelpers
import NIOCore
@testable import OnceBroker
import OnceCore

/// The simulator's one job queue: every job the broker enqueues, a task's next slice (it is the
/// broker's `TaskExecutor`) or an event-loop callback (it backs every connection's
/// `SimulatedEventLoop`), waits here until the simulator runs it, on the simulator's own thread,
/// picked by the seeded generator. That is how concurrent requests interleave deterministically:
/// a seed replays the same interleaving. A job is atomic: interleavings happen where the broker's
/// code suspends or hops between an event loop and a task, as on the real machine, and never
/// inside synchronous code (which the real broker guards with locks).
///
/// Event-loop callbacks of one loop run in the order they were enqueued (NIO's guarantee), so the
/// runnable set is the oldest callback of each loop plus every task job. A scheduled callback is
/// runnable once the simulated clock reaches it; when nothing else can run the clock jumps to the
/// next one a request waits on (a long poll, a linger, a SASL delay).
///
/// It is also the broker's `BrokerTimers`: a request's timer joins its connection's loop, and
/// the broker's periodic work (the group coordinator's ticks, the transaction timeout check,
/// snapshots, expiry, retention) fires on a loop of its own. The clock never jumps for periodic
/// work alone: it fires when the simulation moves the clock on, or a request's timer does, so a
/// seed decides when time passes, and an idle broker is idle even though its ticks are armed.
///
/// Every job has an owner (a simulated process: owner 0 unless a lane or loop names another), so a
/// cluster simulation can pause one broker (its jobs wait, the others run on) and kill one (its
/// jobs are dropped, as a SIGKILLed process's threads are).
final class SimulatedScheduler: TaskExecutor, BrokerTimers, @unchecked Sendable {
    private struct Timer {
        var due: Int64
        var order: Int
        var loop: Int
        var periodic: Bool
        var work: () -> Void
    }
    private struct QueuedTask {
        var owner: Int
        var job: UnownedJob
    }

    private let lock = NIOLock()
    private var rng: SplitMix64
    let clock: SimulatedClock
    private var tasks: [QueuedTask] = []
    private var loops: [[() -> Void]] = []
    private var loopOwners: [Int] = []
    private var paused: Set<Int> = []
    private var killed: Set<Int> = []
    private var graveyard: [Any] = []
    private var timers: [Int: Timer] = [:]
    private var nextTimer = 0
    /// The loop whose callback is running (nil while a task job or nothing runs).
    private(set) var runningLoop: Int?
    /// Which job each pick chose of how many runnable ("t3/5": the fourth task job of five, "l1/2":
    /// loop 1's oldest callback of two): the interleaving a replay must reproduce.
    private(set) var picks: [String] = []
    var recordsPicks = false

    /// The loop the broker's periodic work runs on.
    private let periodicLoop = 0

    init(seed: UInt64, clock: SimulatedClock) {
        // A stream of its own, so the number of jobs does not shift the clients' choices.
        rng = SplitMix64(seed: seed ^ 0x5bd1_e995_a3b6_4c1f)
        self.clock = clock
        // The periodic lane: the single-broker simulation's process, owner 0.
        loops.append([])
        loopOwners.append(0)
    }

    func makeLoop(owner: Int = 0) -> SimulatedEventLoop {
        lock.withLock {
            loops.append([])
            loopOwners.append(owner)
            return SimulatedEventLoop(scheduler: self, id: loops.count - 1)
        }
    }

    private var lanes: [Int: SimulatedTaskLane] = [:]

    /// The task executor of one owner's tasks (kept, since a running job holds it unowned).
    func lane(owner: Int) -> SimulatedTaskLane {
        lock.withLock {
            if let lane = lanes[owner] { return lane }
            let lane = SimulatedTaskLane(scheduler: self, owner: owner)
            lanes[owner] = lane
            return lane
        }
    }

    func enqueue(_ job: consuming ExecutorJob) {
        enqueue(UnownedJob(job), owner: 0)
    }

    func enqueue(_ job: UnownedJob, owner: Int) {
        lock.withLock {
            guard !killed.contains(owner) else { return graveyard.append(job) }
            tasks.append(QueuedTask(owner: owner, job: job))
        }
    }

    func execute(on loop: Int, _ work: @escaping () -> Void) {
        lock.withLock {
            guard !killed.contains(loopOwners[loop]) else { return graveyard.append(work) }
            loops[loop].append(work)
        }
    }

    /// The owner's jobs stay queued, and its timers come due without running, until `resume`.
    func pause(owner: Int) { lock.withLock { _ = paused.insert(owner) } }
    func resume(owner: Int) { lock.withLock { _ = paused.remove(owner) } }

    /// Drops every job the owner has queued or will queue: its process is gone. A restarted
    /// process takes a new owner number.
    func kill(owner: Int) {
        lock.withLock {
            killed.insert(owner)
            // Kept, never run: freeing them would fail the promises they hold, which NIO reports
            // as leaked; a killed process's memory is simply never looked at again.
            graveyard.append(tasks.filter { $0.owner == owner })
            tasks.removeAll { $0.owner == owner }
            for loop in loops.indices where loopOwners[loop] == owner {
                graveyard.append(loops[loop])
                loops[loop].removeAll()
            }
            graveyard.append(timers.filter { loopOwners[$0.value.loop] == owner })
            timers = timers.filter { loopOwners[$0.value.loop] != owner }
        }
    }

    func schedule(on loop: Int, afterMs delay: Int64, periodic: Bool = false, _ work: @escaping () -> Void) -> Int {
        lock.withLock {
            nextTimer += 1
            guard !killed.contains(loopOwners[loop]) else {
                graveyard.append(work)
                return nextTimer
            }
            timers[nextTimer] = Timer(due: clock.now + max(0, delay), order: nextTimer, loop: loop, periodic: periodic, work: work)
            return nextTimer
        }
    }

    func schedule(afterMs delayMs: Int64, on eventLoop: (any EventLoop)?, _ work: @escaping @Sendable () -> Void) -> BrokerTimer {
        let timer: Int
        if let loop = eventLoop as? SimulatedEventLoop {
            timer = schedule(on: loop.id, afterMs: delayMs, work)
        } else {
            precondition(eventLoop == nil, "a broker timer on an event loop the simulator does not run")
            timer = schedule(on: periodicLoop, afterMs: delayMs, periodic: true, work)
        }
        return BrokerTimer { [self] in _ = cancel(timer: timer) }
    }

    /// How many periodic timers have fired, for tests that show the broker's own timers ran.
    private(set) var periodicFired = 0

    /// False when the timer already ran.
    func cancel(timer: Int) -> Bool {
        lock.withLock { timers.removeValue(forKey: timer) != nil }
    }

    /// Runs one runnable job, chosen by the seed; false when nothing can run, even after moving the
    /// clock to the next timer.
    @discardableResult
    func runOne() -> Bool {
        enum Pick {
            case task(QueuedTask)
            case loop(Int, () -> Void)
        }
        let pick: Pick? = lock.withLock {
            let now = clock.now
            for (id, timer) in timers.sorted(by: { $0.key < $1.key }) where timer.due <= now {
                timers[id] = nil
                if timer.periodic { periodicFired += 1 }
                loops[timer.loop].append(timer.work)
            }
            let ready = loops.indices.filter { !loops[$0].isEmpty && !paused.contains(loopOwners[$0]) }
            let runnable = paused.isEmpty ? Array(tasks.indices) : tasks.indices.filter { !paused.contains(tasks[$0].owner) }
            let count = runnable.count + ready.count
            if count == 0 {
                guard let next = timers.values.filter({ !$0.periodic && !paused.contains(loopOwners[$0.loop]) })
                    .min(by: { ($0.due, $0.order) < ($1.due, $1.order) })
                else { return nil }
                clock.advance(by: next.due - now)
                timers[next.order] = nil
                return .loop(next.loop, next.work)
            }
            let chosen = Int.random(in: 0..<count, using: &rng)
            if chosen < runnable.count {
                if recordsPicks { picks.append("t\(chosen)/\(count)") }
                return .task(tasks.remove(at: runnable[chosen]))
            }
            let loop = ready[chosen - runnable.count]
            if recordsPicks { picks.append("l\(loop)/\(count)") }
            return .loop(loop, loops[loop].removeFirst())
        }
        switch pick {
        case nil:
            return false
        case .task(let task):
            if task.owner == 0 {
                task.job.runSynchronously(on: asUnownedTaskExecutor())
            } else {
                task.job.runSynchronously(on: lane(owner: task.owner).asUnownedTaskExecutor())
            }
        case .loop(let loop, let work):
            let outer = runningLoop
            runningLoop = loop
            work()
            runningLoop = outer
        }
        return true
    }

    /// Runs jobs until `done` holds. Running out of jobs first means some work left the
    /// scheduler (a thread or executor of its own), which would make the run depend on timing.
    func run(until done: () -> Bool) {
        while !done() {
            precondition(runOne(), "the simulation waits for work that is not on its scheduler")
        }
    }

    /// Runs every job there is, the timers requests wait on included.
    func runUntilIdle() {
        while runOne() {}
    }

    /// Runs the jobs that are ready now, and those they make ready, without moving the clock.
    func runReady() {
        while lock.withLock({ !tasks.isEmpty || loops.contains { !$0.isEmpty } || timers.values.contains { $0.due <= clock.now } }) {
            _ = runOne()
        }
    }

    /// Whether any job or timer is left, the broker's periodic timers aside.
    var isIdle: Bool {
        lock.withLock { tasks.isEmpty && loops.allSatisfy(\.isEmpty) && timers.values.allSatisfy(\.periodic) }
    }
}

/// One owner's tasks: the `TaskExecutor` of one simulated broker process.
final class SimulatedTaskLane: TaskExecutor, @unchecked Sendable {
    let scheduler: SimulatedScheduler
    let owner: Int

    init(scheduler: SimulatedScheduler, owner: Int) {
        self.scheduler = scheduler
        self.owner = owner
    }

    func enqueue(_ job: consuming ExecutorJob) {
        scheduler.enqueue(UnownedJob(job), owner: owner)
    }
}

/// One simulated connection's event loop: a FIFO lane of the scheduler.
final class SimulatedEventLoop: EventLoop, @unchecked Sendable {
    let scheduler: SimulatedScheduler
    let id: Int

    init(scheduler: SimulatedScheduler, id: Int) {
        self.scheduler = scheduler
        self.id = id
    }

    var inEventLoop: Bool { scheduler.runningLoop == id }

    var now: NIODeadline { .uptimeNanoseconds(UInt64(max(0, scheduler.clock.now)) * 1_000_000) }

    func execute(_ task: @escaping @Sendable () -> Void) {
        scheduler.execute(on: id, task)
    }

    @discardableResult
    func scheduleTask<T>(deadline: NIODeadline, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        scheduleTask(in: deadline - now, task)
    }

    @discardableResult
    func scheduleTask<T>(in delay: TimeAmount, _ task: @escaping @Sendable () throws -> T) -> Scheduled<T> {
        let promise = makePromise(of: T.self)
        let timer = scheduler.schedule(on: id, afterMs: delay.nanoseconds / 1_000_000) {
            do { promise.assumeIsolated().succeed(try task()) } catch { promise.fail(error) }
        }
        let scheduler = scheduler
        return Scheduled(promise: promise, cancellationTask: {
            if scheduler.cancel(timer: timer) { promise.fail(EventLoopError.cancelled) }
        })
    }

    func preconditionInEventLoop(file: StaticString, line: UInt) {
        precondition(inEventLoop, file: file, line: line)
    }

    func preconditionNotInEventLoop(file: StaticString, line: UInt) {
        precondition(!inEventLoop, file: file, line: line)
    }

    func shutdownGracefully(queue: DispatchQueue, _ callback: @escaping @Sendable ((any Error)?) -> Void) {
        queue.async { callback(nil) }
    }
}
