import Logging
import OnceClient
import OnceStreams
import PostgresNIO

/// A PostgreSQL table of processed event ids (primary key on group and id) next to the
/// application's tables: the handler's effect, the `INSERT ... ON CONFLICT DO NOTHING` of the
/// id and the consumer offsets run in one database transaction on one connection.
public final class PostgresDedupStore: DedupStore {
    public typealias Transaction = PostgresConnection

    public let connection: PostgresConnection
    private let logger: Logger

    private init(connection: PostgresConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    /// Connects and creates the store's two tables when missing.
    public static func connect(
        configuration: PostgresConnection.Configuration, logger: Logger = Logger(label: "once.streams.postgres")
    ) async throws -> PostgresDedupStore {
        let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        let store = PostgresDedupStore(connection: connection, logger: logger)
        try await store.createTables()
        return store
    }

    func createTables() async throws {
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS once_processed_events (
                consumer_group TEXT NOT NULL, event_id TEXT NOT NULL,
                processed_at TIMESTAMPTZ NOT NULL DEFAULT now(), PRIMARY KEY (consumer_group, event_id))
            """, logger: logger)
        try await connection.query(
            """
            CREATE TABLE IF NOT EXISTS once_consumer_offsets (
                consumer_group TEXT NOT NULL, topic TEXT NOT NULL, partition INT NOT NULL,
                next_offset BIGINT NOT NULL, PRIMARY KEY (consumer_group, topic, partition))
            """, logger: logger)
    }

    public func process(
        _ events: [DedupEvent], group: String, effect: (DedupEvent, PostgresConnection) async throws -> Void
    ) async throws -> Int {
        guard !events.isEmpty else { return 0 }
        try await connection.query("BEGIN", logger: logger)
        do {
            var applied = 0
            for event in events {
                let inserted = try await connection.query(
                    """
                    INSERT INTO once_processed_events (consumer_group, event_id) VALUES (\(group), \(event.id))
                    ON CONFLICT DO NOTHING RETURNING 1
                    """, logger: logger
                ).collect()
                guard !inserted.isEmpty else { continue }
                try await effect(event, connection)
                applied += 1
            }
            for (tp, next) in DedupEvent.nextOffsets(events) {
                try await connection.query(
                    """
                    INSERT INTO once_consumer_offsets VALUES (\(group), \(tp.topic), \(Int32(tp.partition)), \(next))
                    ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = excluded.next_offset
                    """, logger: logger)
            }
            try await connection.query("COMMIT", logger: logger)
            return applied
        } catch {
            _ = try? await connection.query("ROLLBACK", logger: logger)
            throw error
        }
    }

    public func storedOffsets(group: String) async throws -> [TopicPartition: Int64] {
        var result: [TopicPartition: Int64] = [:]
        let rows = try await connection.query(
            "SELECT topic, partition, next_offset FROM once_consumer_offsets WHERE consumer_group = \(group)",
            logger: logger)
        for try await (topic, partition, next) in rows.decode((String, Int32, Int64).self) {
            result[TopicPartition(topic, partition)] = next
        }
        return result
    }

    public func close() async {
        try? await connection.close()
    }
}

extension PostgresConnection.Configuration {
    /// Parses `postgres://user:password@host:port/database` (no TLS: loopback and tests).
    public init?(url: String) {
        guard let schemeEnd = url.range(of: "://") else { return nil }
        let scheme = url[..<schemeEnd.lowerBound]
        guard scheme == "postgres" || scheme == "postgresql" else { return nil }
        var rest = url[schemeEnd.upperBound...]
        var user = "postgres"
        var password: String?
        if let at = rest.lastIndex(of: "@") {
            let credentials = rest[..<at]
            rest = rest[rest.index(after: at)...]
            if let colon = credentials.firstIndex(of: ":") {
                user = String(credentials[..<colon])
                password = String(credentials[credentials.index(after: colon)...])
            } else {
                user = String(credentials)
            }
        }
        var database: String?
        if let slash = rest.firstIndex(of: "/") {
            database = String(rest[rest.index(after: slash)...])
            rest = rest[..<slash]
        }
        var host = String(rest)
        var port = 5432
        if let colon = rest.lastIndex(of: ":") {
            guard let p = Int(rest[rest.index(after: colon)...]) else { return nil }
            port = p
            host = String(rest[..<colon])
        }
        self.init(host: host, port: port, username: user, password: password, database: database, tls: .disable)
    }
}
