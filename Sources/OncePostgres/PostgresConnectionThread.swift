import Foundation
import Logging
import OnceStorage
import Synchronization

/// A thread of our own holding one PostgreSQL connection, and the queue of jobs that run on it.
/// libpq blocks, so a connection never runs on a NIO event loop or the Swift cooperative pool, and
/// each kind of work (appends, reads, cleaning) has its connection so none waits behind another.
///
/// As it is, it runs queued jobs in order and opens the connection again when it is missing or
/// broken; a job that finds the database unreachable fails, and the next one tries again. The
/// committer subclasses it for its rounds, which gather appends and retry with backoff (see
/// `PostgresCommitter`).
class PostgresConnectionThread: @unchecked Sendable {
    typealias Job = @Sendable (PostgresConnection) throws -> Void
    typealias Queued = (run: Job, done: (@Sendable ((any Error)?) -> Void)?)
    /// When a round starts with no job queued.
    enum Wake { case now, onSignal, after(TimeInterval) }

    private let name: String
    private let url: String
    private let schema: String
    private let answerTimeout: Duration
    let logger: Logger
    /// Guards the queue, and what a subclass keeps beside it for its `idleWake` and `mayStop`.
    let condition = NSCondition()
    // Guarded by `condition`.
    private var jobs: [Queued] = []
    private(set) var stopping = false
    private var stopped = false
    /// Touched only on the thread.
    private(set) var connection: PostgresConnection?

    init(name: String, url: String, schema: String, answerTimeout: Duration, logger: Logger) {
        self.name = name
        self.url = url
        self.schema = schema
        self.answerTimeout = answerTimeout
        self.logger = logger
    }

    final func start() {
        let thread = Thread { [self] in loop() }
        thread.name = name
        thread.start()
    }

    /// Queues a job whose failure only costs work a later pass redoes.
    final func enqueue(_ job: @escaping Job) {
        condition.lock()
        jobs.append((job, nil))
        condition.signal()
        condition.unlock()
    }

    /// Runs a job on the thread and waits for it.
    final func run<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) throws -> T {
        let outcome = BlockingResult<T>()
        let value = Mutex<T?>(nil)
        condition.lock()
        guard !stopped else {
            condition.unlock()
            throw StorageError.io("the postgres engine is closed")
        }
        jobs.append(({ connection in
            let v = try body(connection)
            value.withLock { $0 = v }
        }, { error in
            if let error { outcome.complete(.failure(error)) } else { outcome.complete(.success(value.withLock { $0! })) }
        }))
        condition.signal()
        condition.unlock()
        return try outcome.wait()
    }

    /// Ends the thread once `mayStop` allows; jobs still queued then fail.
    final func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        while !stopped { condition.wait() }
        condition.unlock()
    }

    /// Under `condition`: when a round starts while no job is queued.
    func idleWake() -> Wake { .onSignal }

    /// Under `condition`, once stopping: whether the thread ends now rather than after another round.
    func mayStop() -> Bool { true }

    /// Under `condition`, as a round takes the queued jobs.
    func takeRound() {}

    /// Whether a job is queued; under `condition`.
    final var hasQueuedJobs: Bool { !jobs.isEmpty }

    /// One round over the jobs taken, on the thread without the lock.
    func round(_ batch: [Queued]) {
        for job in batch {
            var pending = [job][...]
            do {
                try runJobs(&pending, on: try liveConnection().connection)
            } catch {
                logger.warning("postgres job failed", metadata: ["thread": "\(name)", "error": "\(error)"])
                job.done?(StorageError.io("\(name): \(error)"))
            }
        }
    }

    /// The thread's connection, opened anew when missing or broken (`opened` then says so).
    final func liveConnection() throws -> (connection: PostgresConnection, opened: Bool) {
        if let connection, !connection.isBroken { return (connection, false) }
        connection = nil
        let opened = try PostgresConnection(url: url, schema: schema, answerTimeout: answerTimeout)
        connection = opened
        return (opened, true)
    }

    final func dropConnection() { connection = nil }

    /// Runs `jobs` in order on `c`, telling each its outcome; a refused statement fails only its
    /// job. Any other error (the connection broke) is thrown with the failing job and the ones
    /// after it still in `jobs`.
    final func runJobs(_ jobs: inout ArraySlice<Queued>, on c: PostgresConnection) throws {
        while let s = jobs.first {
            do {
                try s.run(c)
                jobs.removeFirst()
                s.done?(nil)
            } catch let error as StorageError {
                jobs.removeFirst()
                s.done?(error)
            } catch PostgresError.statement(let state, let message) {
                jobs.removeFirst()
                s.done?(StorageError.io("postgres \(state): \(message)"))
            }
        }
    }

    private func loop() {
        while true {
            condition.lock()
            waiting: while jobs.isEmpty && !stopping {
                switch idleWake() {
                case .now: break waiting
                case .onSignal: condition.wait()
                case .after(let seconds):
                    if !condition.wait(until: Date(timeIntervalSinceNow: seconds)) { break waiting }
                }
            }
            if stopping && mayStop() {
                let abandoned = jobs
                jobs = []
                stopped = true
                condition.broadcast()
                condition.unlock()
                for s in abandoned { s.done?(StorageError.io("the postgres engine is closed")) }
                return
            }
            takeRound()
            let batch = jobs
            jobs = []
            condition.unlock()
            round(batch)
        }
    }
}
