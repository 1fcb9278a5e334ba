import Logging
import OnceStorage
import Synchronization

/// The postgres engine's log cleaner: passes over the compacted partitions this broker leads, on
/// a timer thread of its own with a connection of its own, so a pass's long transaction holds
/// neither the committer's connection (appends) nor the reader's (fetches).
final class PostgresCleaner: Sendable {
    private let url: String
    private let schema: String
    private let logger: Logger
    let statsBox = CleanerStatsBox()
    let timer = Mutex<FlushTimer?>(nil)
    /// One pass at a time, on the connection it holds.
    private let connection = Mutex<PostgresConnectionBox>(PostgresConnectionBox())

    init(url: String, schema: String, logger: Logger) {
        self.url = url
        self.schema = schema
        self.logger = logger
    }

    /// Runs `pass` with the cleaner's connection, opening it first if it is missing or broken.
    func withConnection<R>(_ pass: (PostgresConnection) throws -> R) throws -> R {
        try connection.withLock { box in
            if box.connection == nil || box.connection!.isBroken {
                box.connection = nil
                box.connection = try PostgresConnection(url: url, schema: schema)
            }
            return try pass(box.connection!)
        }
    }

    func stop() {
        let current = timer.withLock { current in
            defer { current = nil }
            return current
        }
        current?.cancelAndWait()
    }
}

/// The cleaner's connection, touched only under its lock.
struct PostgresConnectionBox: @unchecked Sendable {
    var connection: PostgresConnection?
}
