import KafkaProtocol
import Logging
import NIOCore
import OnceCore
import OnceStorage
import Synchronization

/// The PostgreSQL engine: batches stored as sent in one table, topics, log bounds, leases and state
/// documents in others, every write through one committer thread (see `PostgresCommitter`).
///
/// Durability contract: an append is readable by consumers (below the high watermark) and
/// acknowledged (`waitDurable`) only once the PostgreSQL transaction holding it committed, so the
/// broker runs it as `--flush always`. Every append is conditional, in that transaction, on this
/// node holding the partition's lease at the epoch it took; a broker that takes a lease later (at
/// a higher epoch) makes the older holder's writes land nowhere.
///
/// A partition holds in memory only its uncommitted batches and the newest committed ones within
/// `cacheBytes`; older reads are queries on a reader connection of their own (see
/// `PostgresPartitionLog`), and opening a partition reads its bounds and segment summaries, never
/// its batches.
public final class PostgresLogStorage: LogStorage {
    private struct Topic {
        var metadata: TopicMetadata
        var partitions: [PostgresPartitionLog]
    }

    let committer: PostgresCommitter
    /// Reads below the cached tails, on a connection of their own so a read never waits behind
    /// an append round, nor an append behind a large read.
    let reader: PostgresConnectionThread
    let cacheBytes: Int
    let cacheStats = PostgresCacheStats()
    let cleaner: PostgresCleaner
    let nodeId: Int32
    package let schema: String
    let logger: Logger
    private let topicsByName = Mutex<[String: Topic]>([:])
    /// Each opened partition's leader epoch history (see `PostgresLogStorage+LeaderEpochs`).
    let leaderEpochs = Mutex<[TopicPartitionKey: LeaderEpochHistory]>([:])

    /// Recorded with each lease taken at start or with a new partition.
    let leaseMs: Int64

    /// Connects, creates the schema if needed, takes the leases nobody has yet and, at a new epoch,
    /// the ones this node id held in an earlier run (whose queued writes must land nowhere), and
    /// loads every partition's batches. Leases other brokers hold stay theirs: the cluster's
    /// placement moves them by hand-off, so starting a broker does not take leadership of all.
    /// - Parameter schema: the PostgreSQL schema holding the tables, so one database can hold
    ///   several independent clusters (the tests use one each).
    /// - Parameter cacheBytes: committed batches each partition keeps in memory (see
    ///   `--postgres-cache-bytes`).
    public init(
        url: String, nodeId: Int32, schema: String = "once", tuning: PostgresTuning = .init(),
        cacheBytes: Int = PostgresLogStorage.defaultCacheBytes, logger: Logger
    ) throws {
        self.nodeId = nodeId
        self.schema = schema
        self.logger = logger
        self.cacheBytes = cacheBytes
        leaseMs = tuning.leaseLength.wholeMilliseconds
        committer = PostgresCommitter(url: url, schema: schema, nodeId: nodeId, tuning: tuning, logger: logger)
        reader = PostgresConnectionThread(
            name: "once-postgres-reader", url: url, schema: schema, answerTimeout: tuning.requestTimeout, logger: logger)
        cleaner = PostgresCleaner(url: url, schema: schema, tuning: tuning, logger: logger)
        committer.start()
        reader.start()
        cleaner.start()
        do {
            try load()
        } catch {
            try? close()
            throw error
        }
    }

    /// Per partition, the committed batches kept in memory: one Fetch's `max.partition.fetch.bytes`
    /// (Kafka's default), so a consumer at the tail reads without a query.
    public static let defaultCacheBytes = 1 << 20

    /// Bytes of batches the partitions hold in memory, reads that went to the table and the
    /// batches those brought back.
    public var cacheCounts: (bytes: Int, misses: Int, batchesRead: Int) {
        (cacheStats.cachedBytes, cacheStats.missCount, cacheStats.batchesRead)
    }

    /// Makes the next `rounds` append rounds lose their answer after committing (for tests).
    package func loseAppendAnswers(_ rounds: Int) {
        committer.losesAppendAnswers.withLock { $0 = rounds }
    }

    /// Sets how long appends nobody waits for gather before a round commits them (for tests).
    package func setLinger(seconds: Double) {
        committer.linger.withLock { $0 = seconds }
    }

    /// Round trips to the database so far, and the append rounds among them.
    public var roundTrips: (total: Int, appends: Int) { (committer.roundTripCount, committer.appendRoundCount) }

    /// The leader epoch this broker holds for a partition, nil if it does not exist.
    /// Nil also for a partition opened here but led elsewhere (epoch -1).
    public func leaderEpoch(topic: String, partition: Int32) -> Int32? {
        guard let log = self.partition(topic: topic, partition: partition) as? PostgresPartitionLog else { return nil }
        let epoch = log.leaderEpoch
        return epoch >= 0 ? epoch : nil
    }

    private struct LoadedTopic: Sendable {
        var metadata: TopicMetadata
        var stored: [Int32: PostgresPartitionLog.Stored]
        var epochs: [Int32: Int32]
    }

    private func load() throws {
        let (nodeId, leaseMs) = (self.nodeId, self.leaseMs)
        let (loaded, histories) = try committer.run { c -> ([LoadedTopic], [TopicPartitionKey: LeaderEpochHistory]) in
            try c.execute(PostgresSchema.create)
            var topics: [String: LoadedTopic] = [:]
            let rows = try c.query("SELECT name, id, partition_count, configs FROM topics", binaryResults: true)
            for row in 0..<rows.count {
                let name = String(decoding: rows.bytes(row, 0), as: UTF8.self)
                let metadata = TopicMetadata(
                    name: name, id: Self.uuid(rows.bytes(row, 1)), partitionCount: rows.binaryInt32(row, 2),
                    configs: Self.configs(binaryTextArray: rows.bytes(row, 3)))
                topics[name] = LoadedTopic(metadata: metadata, stored: [:], epochs: [:])
            }
            let bounds = try c.query("SELECT topic, partition, log_start_offset, log_end_offset FROM partition_state")
            for row in 0..<bounds.count {
                topics[bounds.text(row, 0)]?.stored[Int32(bounds.int(row, 1))] = .init(
                    logStart: bounds.int(row, 2), logEnd: bounds.int(row, 3))
            }
            let all = topics.values.flatMap { t in (0..<t.metadata.partitionCount).map { (t.metadata.name, $0) } }
            let leases = try c.query(
                PostgresSchema.takeLeases,
                [.int32(nodeId), .strings(all.map(\.0)), .int32s(all.map(\.1)), .int64(leaseMs)])
            for row in 0..<leases.count {
                topics[leases.text(row, 0)]?.epochs[Int32(leases.int(row, 1))] = Int32(leases.int(row, 2))
            }
            for (name, topic) in topics {
                let segmentBytes = (try? TopicConfig(overrides: topic.metadata.configs))?.segmentBytes ?? TopicConfig().segmentBytes
                for (p, stored) in topic.stored {
                    topics[name]!.stored[p]!.segments = try Self.segments(
                        c, name, p, from: stored.logStart, segmentBytes: segmentBytes)
                }
            }
            return (Array(topics.values), try Self.loadLeaderEpochs(c))
        }
        setLeaderEpochs(histories)
        var opened: [String: Topic] = [:]
        for t in loaded {
            let config = try TopicConfig(overrides: t.metadata.configs)
            let logs = try (0..<t.metadata.partitionCount).map { p in
                open(t.metadata.name, p, config: config, stored: t.stored[p] ?? .init(), epoch: t.epochs[p] ?? 0)
            }
            opened[t.metadata.name] = Topic(metadata: t.metadata, partitions: logs)
        }
        topicsByName.withLock { $0 = opened }
        logger.info("postgres storage loaded", metadata: ["topics": "\(opened.count)", "node": "\(nodeId)"])
    }

    private func open(
        _ topic: String, _ partition: Int32, config: TopicConfig, stored: PostgresPartitionLog.Stored, epoch: Int32
    ) -> PostgresPartitionLog {
        PostgresPartitionLog(
            topic: topic, partition: partition, config: config, stored: stored, leaderEpoch: epoch,
            committer: committer, reader: reader, cacheBytes: cacheBytes, stats: cacheStats)
    }

    /// A partition's segment summaries from the table in one query that sends no batch: the rows
    /// from `start` on, cut every `segmentBytes` in offset order, each with its size, largest
    /// timestamp and the first batch that carries it. The database scans the partition's rows;
    /// the broker receives one row per segment.
    static func segments(
        _ c: PostgresConnection, _ topic: String, _ partition: Int32, from start: Int64, segmentBytes: Int
    ) throws -> [SegmentSummary] {
        let rows = try c.query(
            """
            WITH x AS (
                SELECT base_offset, max_timestamp, octet_length(bytes) AS size,
                    (sum(octet_length(bytes)) OVER (ORDER BY base_offset) - octet_length(bytes)) / $3 AS segment
                FROM batches WHERE topic = $1 AND partition = $2 AND last_offset >= $4),
            y AS (SELECT *, max(max_timestamp) OVER (PARTITION BY segment) AS top FROM x)
            SELECT min(base_offset), sum(size)::bigint, max(top), min(base_offset) FILTER (WHERE max_timestamp = top)
            FROM y GROUP BY segment ORDER BY 1
            """,
            [.string(topic), .int32(partition), .int64(Int64(max(1, segmentBytes))), .int64(start)])
        let now = wallClockMillis()
        return (0..<rows.count).map { row in
            let top = rows.int(row, 2)
            return SegmentSummary(
                baseOffset: rows.int(row, 0), size: Int(rows.int(row, 1)), maxTimestamp: top,
                offsetOfMaxTimestamp: top >= 0 ? rows.int(row, 3) : -1, firstAppendMs: nil,
                // When the batches carry no timestamps, their age counts from now: retention
                // then never deletes what an earlier leader wrote sooner than it would have.
                lastAppendMs: now)
        }
    }

    /// Takes a partition's lease at one epoch more, in one transaction, if its lease expired or its
    /// holder's heartbeat did, and reopens the partition from what the database committed: the log
    /// bounds and batches the previous leader wrote. Returns the new epoch, or nil when the lease is
    /// held (another broker took it first) or the partition is unknown here.
    public func takeOver(topic: String, partition: Int32, sessionTimeoutMs: Int64) throws -> Int32? {
        guard let metadata = self.topic(named: topic), partition < metadata.partitionCount else { return nil }
        let nodeId = self.nodeId
        let segmentBytes = (try? TopicConfig(overrides: metadata.configs))?.segmentBytes ?? TopicConfig().segmentBytes
        let taken = try committer.run { c -> (Int32, PostgresPartitionLog.Stored, LeaderEpochHistory)? in
            try c.execute("BEGIN")
            do {
                let lease = try c.query(
                    """
                    UPDATE partition_leases l
                        SET holder = $1, leader_epoch = l.leader_epoch + 1,
                            expires_at = now() + $4::bigint * interval '1 millisecond'
                    WHERE l.topic = $2 AND l.partition = $3
                        AND (l.expires_at <= now() OR NOT EXISTS (
                            SELECT 1 FROM brokers b WHERE b.node_id = l.holder AND b.expires_at > now()))
                    RETURNING l.leader_epoch
                    """,
                    [.int32(nodeId), .string(topic), .int32(partition), .int64(sessionTimeoutMs)])
                guard lease.count == 1 else {
                    try c.execute("ROLLBACK")
                    return nil
                }
                let history = try Self.recordTakenEpoch(c, topic: topic, partition: partition, epoch: Int32(lease.int(0, 0)))
                let bounds = try c.query(
                    "SELECT log_start_offset, log_end_offset FROM partition_state WHERE topic = $1 AND partition = $2",
                    [.string(topic), .int32(partition)])
                var stored = PostgresPartitionLog.Stored()
                if bounds.count == 1 { (stored.logStart, stored.logEnd) = (bounds.int(0, 0), bounds.int(0, 1)) }
                stored.segments = try Self.segments(c, topic, partition, from: stored.logStart, segmentBytes: segmentBytes)
                try c.execute("COMMIT")
                return (Int32(lease.int(0, 0)), stored, history)
            } catch {
                try? c.execute("ROLLBACK")
                throw error
            }
        }
        guard let (epoch, stored, history) = taken else { return nil }
        setLeaderEpochs([TopicPartitionKey(topic, partition): history])
        let log = open(topic, partition, config: try TopicConfig(overrides: metadata.configs), stored: stored, epoch: epoch)
        topicsByName.withLock { topics in
            guard topics[topic]?.metadata.id == metadata.id, Int(partition) < topics[topic]?.partitions.count ?? 0 else { return }
            topics[topic]!.partitions[Int(partition)] = log
        }
        logger.info("took over partition", metadata: ["partition": "\(topic)-\(partition)", "epoch": "\(epoch)"])
        return epoch
    }

    public func topics() -> [TopicMetadata] {
        topicsByName.withLock { $0.values.map(\.metadata) }.sorted { $0.name < $1.name }
    }

    /// A miss asks the database once: another broker may have created the topic since this
    /// broker's last heartbeat, and a client told UNKNOWN_TOPIC_OR_PARTITION (or auto-creating a
    /// second copy) for a topic that exists would be wrong.
    public func topic(named name: String) -> TopicMetadata? {
        if let known = topicsByName.withLock({ $0[name]?.metadata }) { return known }
        do { try syncTopics(only: name) } catch {
            logger.warning("reading a topic from the database failed", metadata: ["topic": "\(name)", "error": "\(error)"])
        }
        return topicsByName.withLock { $0[name]?.metadata }
    }

    /// Makes this broker's topics what the database holds, for topics other brokers created,
    /// deleted, grew or reconfigured: the heartbeat calls it for all, a miss for one name.
    /// Partitions opened here are led elsewhere (epoch -1: this broker's appends would be refused
    /// by the lease check anyway); `takeOver` reopens one from the database when it moves here.
    /// Topics opened here after the query began are left alone, as the query could not see them.
    public func syncTopics(only name: String? = nil) throws {
        let before = topicsByName.withLock { $0.mapValues(\.metadata.id) }
        let rows: [TopicMetadata] = try committer.run { c in
            let result = try c.query(
                "SELECT name, id, partition_count, configs FROM topics" + (name == nil ? "" : " WHERE name = $1"),
                name.map { [.string($0)] } ?? [], binaryResults: true)
            return (0..<result.count).map { row in
                TopicMetadata(
                    name: String(decoding: result.bytes(row, 0), as: UTF8.self), id: Self.uuid(result.bytes(row, 1)),
                    partitionCount: result.binaryInt32(row, 2), configs: Self.configs(binaryTextArray: result.bytes(row, 3)))
            }
        }
        let stored = Dictionary(rows.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var removed: [PostgresPartitionLog] = []
        try topicsByName.withLock { topics in
            let scope = name.map { [$0] } ?? Array(before.keys)
            for gone in scope where stored[gone] == nil || stored[gone]?.id != before[gone] {
                guard let id = before[gone], topics[gone]?.metadata.id == id else { continue }
                removed += topics.removeValue(forKey: gone)?.partitions ?? []
            }
            for metadata in stored.values {
                let config = try TopicConfig(overrides: metadata.configs)
                guard var topic = topics[metadata.name] else {
                    topics[metadata.name] = Topic(
                        metadata: metadata, partitions: (0..<metadata.partitionCount).map { unled(metadata.name, $0, config) })
                    continue
                }
                guard topic.metadata.id == metadata.id else { continue }
                if metadata.partitionCount > topic.partitions.count {
                    topic.partitions += (Int32(topic.partitions.count)..<metadata.partitionCount).map { unled(metadata.name, $0, config) }
                    topic.metadata.partitionCount = metadata.partitionCount
                }
                if topic.metadata.configs != metadata.configs {
                    topic.metadata.configs = metadata.configs
                    for log in topic.partitions { log.updateConfig(config) }
                }
                topics[metadata.name] = topic
            }
        }
        for log in removed { log.markDeleted() }
    }

    private func unled(_ topic: String, _ partition: Int32, _ config: TopicConfig) -> PostgresPartitionLog {
        open(topic, partition, config: config, stored: .init(), epoch: -1)
    }

    @discardableResult
    public func createTopic(name: String, partitions: Int32, configs: [String: String]) throws -> TopicMetadata {
        if let problem = TopicName.validationError(name) { throw StorageError.invalidConfig(problem) }
        guard partitions > 0 else { throw StorageError.invalidConfig("partition count \(partitions) must be positive") }
        let config = try TopicConfig(overrides: configs)
        guard topic(named: name) == nil else { throw StorageError.topicExists(name) }
        let metadata = TopicMetadata(name: name, id: .random(), partitionCount: partitions, configs: configs)
        let epochs = try committer.run { [nodeId, leaseMs] c in
            do {
                try c.query(
                    "INSERT INTO topics VALUES ($1, $2, $3, $4)",
                    [.string(name), .data(Self.bytes(metadata.id)), .int32(partitions), .strings(Self.pairs(configs))])
            } catch PostgresError.statement(let state, _) where state == "23505" {
                throw StorageError.topicExists(name)
            }
            return try Self.addPartitionRows(c, nodeId: nodeId, leaseMs: leaseMs, topic: name, from: 0, to: partitions)
        }
        startLeaderEpochs(topic: name, epochs)
        let logs = (0..<partitions).map { p in open(name, p, config: config, stored: .init(), epoch: epochs[p] ?? 0) }
        return try topicsByName.withLock { topics in
            // A heartbeat's sync may have opened it from the row just committed, unled.
            guard topics[name] == nil || topics[name]?.metadata.id == metadata.id else { throw StorageError.topicExists(name) }
            topics[name] = Topic(metadata: metadata, partitions: logs)
            return metadata
        }
    }

    private static func addPartitionRows(
        _ c: PostgresConnection, nodeId: Int32, leaseMs: Int64, topic: String, from: Int32, to: Int32
    ) throws -> [Int32: Int32] {
        let range = Array(from..<to)
        try c.query(
            "INSERT INTO partition_state (topic, partition) SELECT $1, p FROM unnest($2::int[]) AS x(p) ON CONFLICT DO NOTHING",
            [.string(topic), .int32s(range)])
        let leases = try c.query(
            PostgresSchema.takeLeases,
            [.int32(nodeId), .strings(range.map { _ in topic }), .int32s(range), .int64(leaseMs)])
        var epochs: [Int32: Int32] = [:]
        for row in 0..<leases.count { epochs[Int32(leases.int(row, 1))] = Int32(leases.int(row, 2)) }
        return epochs
    }

    /// A partition just added starts its history at offset 0, as `takeLeases` recorded it.
    private func startLeaderEpochs(topic: String, _ epochs: [Int32: Int32]) {
        setLeaderEpochs(Dictionary(uniqueKeysWithValues: epochs.map { partition, epoch in
            (TopicPartitionKey(topic, partition), LeaderEpochHistory([.init(epoch: epoch, startOffset: 0)]))
        }))
    }

    /// The rows go first: a heartbeat's sync between the two steps then agrees the topic is gone
    /// instead of reopening it, and appends meanwhile fail on the deleted lease.
    public func deleteTopic(name: String) throws {
        guard topic(named: name) != nil else { throw StorageError.unknownTopic(name) }
        try committer.run { c in
            for table in ["batches", "partition_state", "partition_leases", "partition_leader_epochs"] {
                try c.query("DELETE FROM \(table) WHERE topic = $1", [.string(name)])
            }
            try c.query("DELETE FROM topics WHERE name = $1", [.string(name)])
        }
        let removed = topicsByName.withLock { $0.removeValue(forKey: name) }
        removeLeaderEpochs(topic: name)
        for log in removed?.partitions ?? [] { log.markDeleted() }
    }

    @discardableResult
    public func addPartitions(topic name: String, count: Int32) throws -> TopicMetadata {
        guard let current = topic(named: name) else { throw StorageError.unknownTopic(name) }
        guard count > current.partitionCount else {
            throw StorageError.invalidPartitions(
                "topic '\(name)' has \(current.partitionCount) partitions; the new count must be larger")
        }
        let config = try TopicConfig(overrides: current.configs)
        let epochs = try committer.run { [nodeId, leaseMs] c in
            try c.query("UPDATE topics SET partition_count = $2 WHERE name = $1", [.string(name), .int32(count)])
            return try Self.addPartitionRows(
                c, nodeId: nodeId, leaseMs: leaseMs, topic: name, from: current.partitionCount, to: count)
        }
        startLeaderEpochs(topic: name, epochs)
        return try topicsByName.withLock { topics in
            guard var topic = topics[name] else { throw StorageError.unknownTopic(name) }
            // A heartbeat's sync may have opened the new partitions already, unled: ours replace them.
            topic.partitions = Array(topic.partitions.prefix(Int(current.partitionCount))) + (current.partitionCount..<count).map { p in
                open(name, p, config: config, stored: .init(), epoch: epochs[p] ?? 0)
            }
            topic.metadata.partitionCount = count
            topics[name] = topic
            return topic.metadata
        }
    }

    @discardableResult
    public func setTopicConfigs(topic name: String, configs: [String: String]) throws -> TopicMetadata {
        let config = try TopicConfig(overrides: configs)
        guard topic(named: name) != nil else { throw StorageError.unknownTopic(name) }
        try committer.run { c in
            _ = try c.query("UPDATE topics SET configs = $2 WHERE name = $1", [.string(name), .strings(Self.pairs(configs))])
        }
        return try topicsByName.withLock { topics in
            guard var topic = topics[name] else { throw StorageError.unknownTopic(name) }
            topic.metadata.configs = configs
            topics[name] = topic
            for log in topic.partitions { log.updateConfig(config) }
            return topic.metadata
        }
    }

    public func partition(topic: String, partition: Int32) -> PartitionLog? {
        topicsByName.withLock { topics in
            guard let logs = topics[topic]?.partitions, partition >= 0, Int(partition) < logs.count else { return nil }
            return logs[Int(partition)]
        }
    }

    public func loadedPartitions() -> [any PartitionLog] {
        topicsByName.withLock { $0.values.flatMap(\.partitions) }
    }

    public func enforceRetention(nowMs: Int64) {
        for log in topicsByName.withLock({ $0.values.flatMap(\.partitions) }) { log.enforceRetention(nowMs: nowMs) }
    }

    /// Commits what is queued and closes the connection.
    /// Reads below a partition's cached tail are queries.
    public var readsMayWait: Bool { true }

    public func close() throws {
        cleaner.stop()
        reader.stop()
        committer.stop()
    }

    public func readState(named name: String) throws -> [UInt8]? {
        try Self.validateStateName(name)
        return try committer.run { c in
            let rows = try c.query("SELECT bytes FROM state_documents WHERE name = $1", [.string(name)], binaryResults: true)
            return rows.count == 0 ? nil : rows.bytes(0, 0)
        }
    }

    public func writeState(named name: String, _ bytes: [UInt8]) throws {
        try Self.validateStateName(name)
        try committer.run { c in
            _ = try c.query(
                "INSERT INTO state_documents VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET bytes = EXCLUDED.bytes",
                [.string(name), .data(bytes)])
        }
    }

    /// Conditional on the lease in the same statement, as appends are: once another broker took
    /// the partition at a higher epoch, nothing this one writes about it lands.
    public func writeState(named name: String, _ bytes: [UInt8], describing log: any PartitionLog) throws {
        guard let log = log as? PostgresPartitionLog else { return try writeState(named: name, bytes) }
        try Self.validateStateName(name)
        let (topic, partition, epoch, nodeId) = (log.topic, log.partition, log.leaderEpoch, nodeId)
        let written = try committer.run { c in
            try c.query(
                "INSERT INTO state_documents SELECT $1, $2 WHERE EXISTS (SELECT 1 FROM partition_leases "
                    + "WHERE topic = $3 AND partition = $4 AND holder = $5 AND leader_epoch = $6) "
                    + "ON CONFLICT (name) DO UPDATE SET bytes = EXCLUDED.bytes RETURNING name",
                [.string(name), .data(bytes), .string(topic), .int32(partition), .int32(nodeId), .int32(epoch)]
            ).count
        }
        guard written == 1 else {
            log.fence()
            throw StorageError.notLeader("\(topic)-\(partition): lease moved past epoch \(epoch); \(name) not written")
        }
    }

    public func removeState(named name: String) throws {
        try Self.validateStateName(name)
        try committer.run { c in _ = try c.query("DELETE FROM state_documents WHERE name = $1", [.string(name)]) }
    }

    /// Removes a schema and everything in it: for tests that give each run a schema of its own.
    package static func dropSchema(url: String, schema: String) throws {
        let c = try PostgresConnection(url: url, schema: schema)
        let quoted = "\"" + schema + "\""
        try c.execute("DROP SCHEMA \(quoted) CASCADE")
    }

    private static func validateStateName(_ name: String) throws {
        if let problem = TopicName.validationError(name) { throw StorageError.invalidConfig("state name: \(problem)") }
    }

    /// Drops the rows wholly below a partition's new log start and records the start, only while
    /// `holder` leads the partition at `epoch`: an ex-leader's retention or snapshot trim must not
    /// delete what the new leader's state still needs. Returns whether it held the lease.
    static func trimStatement(
        _ topic: String, _ partition: Int32, _ start: Int64, holder: Int32, epoch: Int32
    ) -> @Sendable (PostgresConnection) throws -> Bool {
        { c in
            let held = try c.query(
                "WITH held AS (SELECT 1 FROM partition_leases WHERE topic = $1 AND partition = $2 "
                    + "AND holder = $4 AND leader_epoch = $5), "
                    + "d AS (DELETE FROM batches WHERE topic = $1 AND partition = $2 AND last_offset < $3 "
                    + "AND EXISTS (SELECT 1 FROM held)) "
                    + "UPDATE partition_state SET log_start_offset = greatest(log_start_offset, $3) "
                    + "WHERE topic = $1 AND partition = $2 AND EXISTS (SELECT 1 FROM held) RETURNING 1",
                [.string(topic), .int32(partition), .int64(start), .int32(holder), .int32(epoch)]
            ).count == 1
            // The epochs wholly below the start go with the rows, only if the trim itself happened.
            if held { try trimLeaderEpochs(c, topic, partition, start) }
            return held
        }
    }

    private static func pairs(_ configs: [String: String]) -> [String] {
        configs.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
    }

    /// A text[] in binary form back to the configs it holds.
    private static func configs(binaryTextArray bytes: [UInt8]) -> [String: String] {
        func int(_ at: Int) -> Int { bytes[at..<at + 4].reduce(0) { $0 << 8 | Int($1) } }
        guard bytes.count >= 12, int(0) == 1 else { return [:] }
        let count = int(12)
        var position = 20
        var out: [String: String] = [:]
        for _ in 0..<count {
            let length = int(position)
            let pair = String(decoding: bytes[position + 4..<position + 4 + length], as: UTF8.self)
            position += 4 + length
            if let eq = pair.firstIndex(of: "=") { out[String(pair[..<eq])] = String(pair[pair.index(after: eq)...]) }
        }
        return out
    }

    private static func bytes(_ id: KafkaUUID) -> [UInt8] {
        (0..<8).reversed().map { UInt8(truncatingIfNeeded: id.high >> ($0 * 8)) }
            + (0..<8).reversed().map { UInt8(truncatingIfNeeded: id.low >> ($0 * 8)) }
    }

    private static func uuid(_ bytes: [UInt8]) -> KafkaUUID {
        guard bytes.count == 16 else { return .zero }
        return KafkaUUID(
            high: bytes[0..<8].reduce(0) { $0 << 8 | UInt64($1) }, low: bytes[8..<16].reduce(0) { $0 << 8 | UInt64($1) })
    }
}
