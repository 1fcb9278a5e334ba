import OnceCore

/// Each partition's leader epoch history (Kafka's leader-epoch checkpoint), kept in the database: a
/// row per epoch taken, with the log end it was taken at, written by the statement or transaction
/// that takes the lease, so the history holds an epoch exactly when some broker led under it. A
/// broker loads it when it opens or takes a partition; OffsetForLeaderEpoch answers from it.
extension PostgresLogStorage {
    static let createLeaderEpochs = """
        CREATE TABLE IF NOT EXISTS partition_leader_epochs (
            topic text NOT NULL, partition int NOT NULL, leader_epoch int NOT NULL, start_offset bigint NOT NULL,
            PRIMARY KEY (topic, partition, leader_epoch));
        """

    /// The partition's history as this broker last loaded it, trimmed to what its log still holds
    /// by the caller; nil for a partition this broker never opened.
    public func leaderEpochHistory(topic: String, partition: Int32) -> LeaderEpochHistory? {
        leaderEpochs.withLock { $0[TopicPartitionKey(topic, partition)] }
    }

    /// Every partition's history: at start, before any partition is served.
    static func loadLeaderEpochs(_ c: PostgresConnection) throws -> [TopicPartitionKey: LeaderEpochHistory] {
        let rows = try c.query(
            "SELECT topic, partition, leader_epoch, start_offset FROM partition_leader_epochs ORDER BY topic, partition, leader_epoch")
        var taken: [TopicPartitionKey: [LeaderEpochHistory.Entry]] = [:]
        for row in 0..<rows.count {
            taken[TopicPartitionKey(rows.text(row, 0), Int32(rows.int(row, 1))), default: []].append(
                LeaderEpochHistory.Entry(epoch: Int32(rows.int(row, 2)), startOffset: rows.int(row, 3)))
        }
        return taken.mapValues(LeaderEpochHistory.init)
    }

    /// Records `epoch`, just taken in the caller's open transaction, at the stored log end, and
    /// returns the partition's whole history with it: one round trip. A row left by a deleted
    /// topic of the same name cannot survive (`deleteTopic` removes them), yet a conflict is
    /// resolved in favour of what is taken now.
    static func recordTakenEpoch(
        _ c: PostgresConnection, topic: String, partition: Int32, epoch: Int32
    ) throws -> LeaderEpochHistory {
        let rows = try c.query(
            """
            WITH taken AS (
                INSERT INTO partition_leader_epochs
                    SELECT $1, $2, $3, coalesce(
                        (SELECT log_end_offset FROM partition_state WHERE topic = $1 AND partition = $2), 0)
                ON CONFLICT (topic, partition, leader_epoch) DO UPDATE SET start_offset = EXCLUDED.start_offset
                RETURNING leader_epoch, start_offset)
            SELECT leader_epoch, start_offset FROM partition_leader_epochs
                WHERE topic = $1 AND partition = $2 AND leader_epoch < $3
            UNION ALL SELECT leader_epoch, start_offset FROM taken
            ORDER BY 1
            """,
            [.string(topic), .int32(partition), .int32(epoch)])
        return LeaderEpochHistory((0..<rows.count).map {
            LeaderEpochHistory.Entry(epoch: Int32(rows.int($0, 0)), startOffset: rows.int($0, 1))
        })
    }

    /// Replaces what this broker holds for the partitions named.
    func setLeaderEpochs(_ histories: [TopicPartitionKey: LeaderEpochHistory]) {
        leaderEpochs.withLock { $0.merge(histories) { _, new in new } }
    }

    func removeLeaderEpochs(topic: String) {
        leaderEpochs.withLock { all in all = all.filter { $0.key.topic != topic } }
    }

    /// Drops the rows of epochs that end at or below a partition's new log start, keeping the one
    /// that holds it (Kafka's `truncateFromStart`; the loaded history moves its start there).
    static func trimLeaderEpochs(_ c: PostgresConnection, _ topic: String, _ partition: Int32, _ start: Int64) throws {
        try c.query(
            """
            DELETE FROM partition_leader_epochs e WHERE topic = $1 AND partition = $2 AND EXISTS (
                SELECT 1 FROM partition_leader_epochs n
                WHERE n.topic = $1 AND n.partition = $2 AND n.leader_epoch > e.leader_epoch AND n.start_offset <= $3)
            """,
            [.string(topic), .int32(partition), .int64(start)])
    }
}
