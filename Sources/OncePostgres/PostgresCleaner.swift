import Logging
import OnceStorage
import Synchronization

/// The postgres engine's log cleaner: passes over the compacted partitions this broker leads on a
/// timer, each partition's work on a connection thread of its own, so a pass's long transaction
/// holds neither the committer's connection (appends) nor the reader's (fetches).
final class PostgresCleaner: Sendable {
    let statsBox = CleanerStatsBox()
    let timer = Mutex<FlushTimer?>(nil)
    private let connection: PostgresConnectionThread

    init(url: String, schema: String, tuning: PostgresTuning, logger: Logger) {
        connection = PostgresConnectionThread(
            name: "once-postgres-cleaner", url: url, schema: schema, answerTimeout: tuning.requestTimeout, logger: logger)
    }

    func start() { connection.start() }

    /// Runs `pass` on the cleaner's connection and waits for it.
    func run<R: Sendable>(_ pass: @escaping @Sendable (PostgresConnection) throws -> R) throws -> R {
        try connection.run(pass)
    }

    func stop() {
        let current = timer.withLock { current in
            defer { current = nil }
            return current
        }
        current?.cancelAndWait()
        connection.stop()
    }
}
