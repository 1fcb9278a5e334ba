import OnceClient

/// The embedded default store: a SQLite file holding the processed-event ids and the consumer
/// offsets next to the application's own tables, so the effect, the ids and the offsets commit
/// in one SQLite transaction.
public final class SQLiteDedupStore: DedupStore {
    public typealias Transaction = SQLiteDatabase

    public let database: SQLiteDatabase

    public init(path: String) throws {
        database = try SQLiteDatabase(path: path)
        try database.execute(
            """
            CREATE TABLE IF NOT EXISTS once_processed_events (
                consumer_group TEXT NOT NULL, event_id TEXT NOT NULL, processed_at INTEGER NOT NULL,
                PRIMARY KEY (consumer_group, event_id))
            """)
        try database.execute(
            """
            CREATE TABLE IF NOT EXISTS once_consumer_offsets (
                consumer_group TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL,
                next_offset INTEGER NOT NULL, PRIMARY KEY (consumer_group, topic, partition))
            """)
    }

    public func process(
        _ events: [DedupEvent], group: String, effect: (DedupEvent, SQLiteDatabase) async throws -> Void
    ) async throws -> Int {
        guard !events.isEmpty else { return 0 }
        try database.execute("BEGIN IMMEDIATE")
        do {
            var applied = 0
            for event in events {
                try database.execute(
                    "INSERT INTO once_processed_events VALUES (?, ?, strftime('%s','now')) ON CONFLICT DO NOTHING",
                    [.text(group), .text(event.id)])
                guard database.changes == 1 else { continue }
                try await effect(event, database)
                applied += 1
            }
            for (tp, next) in DedupEvent.nextOffsets(events) {
                try database.execute(
                    """
                    INSERT INTO once_consumer_offsets VALUES (?, ?, ?, ?)
                    ON CONFLICT (consumer_group, topic, partition) DO UPDATE SET next_offset = excluded.next_offset
                    """, [.text(group), .text(tp.topic), .integer(Int64(tp.partition)), .integer(next)])
            }
            try database.execute("COMMIT")
            return applied
        } catch {
            _ = try? database.execute("ROLLBACK")
            throw error
        }
    }

    public func storedOffsets(group: String) async throws -> [TopicPartition: Int64] {
        var result: [TopicPartition: Int64] = [:]
        for row in try database.execute(
            "SELECT topic, partition, next_offset FROM once_consumer_offsets WHERE consumer_group = ?", [.text(group)])
        {
            guard case .text(let topic) = row[0], case .integer(let partition) = row[1], case .integer(let next) = row[2]
            else { continue }
            result[TopicPartition(topic, Int32(partition))] = next
        }
        return result
    }
}
