import KafkaProtocol
import NIOCore
import OnceCore
import OnceStorage

/// One simulated broker's engine over the shared `SimulatedDatabase`: the `ClusterDatabase` the
/// production `DatabaseCluster` runs on, in place of `PostgresLogStorage`. Statements run at once
/// inside the calling job (the postgres engine's caller blocks on its committer thread for them);
/// appends gather in the partitions' queues and commit in rounds, jobs of this broker on the
/// scheduler, as the committer thread's rounds: one started when someone waits for durability,
/// or after the linger when appends alone are queued. A failed round (the database unreachable,
/// or an answer lost after the commit) fails its waiters with "outcome unknown", keeps the
/// batches queued, and the next round first reads the stored log ends (the engine's
/// reconnect-and-resolve path), so a batch that landed is recognised and never written twice.
final class SimulatedClusterStorage: ClusterDatabase, @unchecked Sendable {
    let nodeId: Int32
    let database: SimulatedDatabase
    private let clock: SimulatedClock
    private let loop: SimulatedEventLoop
    private var topicsByName: [String: (metadata: TopicMetadata, partitions: [SimulatedDatabaseLog])] = [:]
    private var dirty: [TopicPartitionKey: SimulatedDatabaseLog] = [:]
    private var roundQueued = false
    private var lingerArmed = false
    private var mustResolve = true
    private(set) var isConnected = true
    private var backoffMs: Int64 = 50
    private var closed = false

    static let leaseSeconds: Int64 = 10
    static let lingerMs: Int64 = 20

    /// Opens the engine as `PostgresLogStorage.init` does: takes the leases nobody holds and,
    /// at one epoch more, those this node held in an earlier run, and loads every partition.
    init(nodeId: Int32, database: SimulatedDatabase, loop: SimulatedEventLoop) throws {
        self.nodeId = nodeId
        self.database = database
        self.clock = database.clock
        self.loop = loop
        try database.checkReachable()
        let all = database.topics.values.sorted { $0.name < $1.name }.flatMap { t in
            (0..<t.partitionCount).map { TopicPartitionKey(t.name, $0) }
        }
        let epochs = database.takeLeases(node: nodeId, all, seconds: Self.leaseSeconds)
        for metadata in database.topics.values.sorted(by: { $0.name < $1.name }) {
            let config = try TopicConfig(overrides: metadata.configs)
            topicsByName[metadata.name] = (metadata, try (0..<metadata.partitionCount).map { p in
                try open(TopicPartitionKey(metadata.name, p), config: config, epoch: epochs[TopicPartitionKey(metadata.name, p)] ?? -1)
            })
        }
    }

    /// The partition's cache rebuilt from the committed rows.
    private func open(_ key: TopicPartitionKey, config: TopicConfig, epoch: Int32) throws -> SimulatedDatabaseLog {
        let rows = database.partitions[key] ?? .init()
        let cache = MemoryPartitionLog(
            topic: key.topic, partition: key.partition, config: config,
            baseOffset: rows.batches.first?.baseOffset ?? rows.logEnd, clock: { [clock] in clock.now })
        for batch in rows.batches { _ = try cache.append(ByteBuffer(bytes: batch.bytes)) }
        if rows.logStart > cache.logStartOffset && rows.logStart <= cache.logEndOffset {
            _ = try cache.advanceLogStart(to: rows.logStart)
        }
        return SimulatedDatabaseLog(topic: key.topic, partition: key.partition, cache: cache, leaderEpoch: epoch, storage: self)
    }

    // MARK: Commit rounds

    func markDirty(_ log: SimulatedDatabaseLog) {
        dirty[log.key] = log
        guard !lingerArmed && !roundQueued else { return }
        lingerArmed = true
        _ = loop.scheduler.schedule(on: loop.id, afterMs: Self.lingerMs) { [self] in
            lingerArmed = false
            round()
        }
    }

    func wantCommit() {
        guard !roundQueued else { return }
        roundQueued = true
        loop.execute { [self] in round() }
    }

    /// A round inside the current job, for `sync`.
    func commitNow() throws {
        try database.checkReachable()
        round()
    }

    private func round() {
        roundQueued = false
        guard !closed else { return }
        let logs = dirty.values.sorted { $0.key < $1.key }
        do {
            try database.checkReachable()
            isConnected = true
            if mustResolve {
                resolve(logs)
                mustResolve = false
            }
            try commit(logs)
            backoffMs = 50
        } catch {
            isConnected = false
            mustResolve = true
            for log in logs { log.failWaiters(StorageError.outcomeUnknown("simulated database: \(error)")) }
            // The committer thread sleeps out its backoff, then reconnects.
            let delay = backoffMs
            backoffMs = min(backoffMs * 2, 2_000)
            roundQueued = true
            _ = loop.scheduler.schedule(on: loop.id, afterMs: delay) { [self] in round() }
            return
        }
        for log in logs where !log.hasPending { dirty[log.key] = nil }
        if !dirty.isEmpty && !lingerArmed && !roundQueued {
            lingerArmed = true
            _ = loop.scheduler.schedule(on: loop.id, afterMs: Self.lingerMs) { [self] in
                lingerArmed = false
                round()
            }
        }
    }

    /// The stored end says what landed only while the lease is still this node's at the log's
    /// epoch: once another broker took it, the end counts that broker's batches too, so the
    /// partition is fenced instead (its producers retry at the new leader, whose sequences tell a
    /// landed batch from a lost one).
    private func resolve(_ logs: [SimulatedDatabaseLog]) {
        for log in logs where log.hasPending {
            guard let lease = database.leases[log.key], lease.holder == nodeId, lease.epoch == log.leaderEpoch else {
                log.fence()
                continue
            }
            if let end = database.partitions[log.key]?.logEnd { log.committed(upTo: end) }
        }
    }

    private struct LostAnswer: Error {}

    private func commit(_ logs: [SimulatedDatabaseLog]) throws {
        var round: [(key: TopicPartitionKey, epoch: Int32, batches: [SimulatedDatabase.StoredBatch])] = []
        for log in logs {
            let (epoch, batches) = log.pendingForCommit()
            if !batches.isEmpty { round.append((log.key, epoch, batches)) }
        }
        guard !round.isEmpty else { return }
        switch database.append(node: nodeId, round) {
        case .leaseLost(let lost):
            for log in logs where lost.contains(log.key) { log.fence() }
        case .notAtLogEnd:
            mustResolve = true
        case .committed:
            if database.losesAnswer(node: nodeId) { throw LostAnswer() }
            for r in round { dirty[r.key]?.committed(upTo: r.batches.last!.lastOffset + 1) }
        }
    }

    func trim(_ key: TopicPartitionKey, to start: Int64) {
        guard database.reachable, var rows = database.partitions[key] else { return }
        rows.batches.removeAll { $0.lastOffset < start }
        rows.logStart = max(rows.logStart, start)
        database.partitions[key] = rows
    }

    /// The process is gone: nothing more of it reaches the database.
    func kill() { closed = true }

    // MARK: ClusterDatabase

    func register(
        incarnation: Int64, listeners: String, rack: String?, sessionTimeoutMs: Int64, sleep: (Int64) async throws -> Void
    ) async throws {
        var waited = false
        while true {
            try database.checkReachable()
            if let row = database.brokers[nodeId], row.expiresAt > database.now {
                guard !waited else { throw DuplicateNodeId(nodeId: nodeId) }
                waited = true
                try await sleep(row.expiresAt - database.now + 100)
                continue
            }
            database.brokers[nodeId] = .init(
                incarnation: incarnation, listeners: listeners, rack: rack, expiresAt: database.now + sessionTimeoutMs)
            return
        }
    }

    func heartbeat(incarnation: Int64, sessionTimeoutMs: Int64) throws -> HeartbeatOutcome {
        try database.checkReachable()
        guard var row = database.brokers[nodeId], row.incarnation == incarnation else { return .replaced }
        let hadExpired = row.expiresAt <= database.now
        row.expiresAt = database.now + sessionTimeoutMs
        database.brokers[nodeId] = row
        var renewed = 0
        for (key, lease) in database.leases where lease.holder == nodeId && lease.expiresAt != .min {
            database.leases[key]!.expiresAt = database.now + sessionTimeoutMs
            renewed += 1
        }
        return .renewed(leases: renewed, hadExpired: hadExpired)
    }

    func handOff(topic: String, partition: Int32, epoch: Int32) throws {
        let key = TopicPartitionKey(topic, partition)
        if let log = self.partition(topic: topic, partition: partition) as? SimulatedDatabaseLog, log.hasPending {
            try commitNow()
            if log.hasPending { throw StorageError.outcomeUnknown("\(key): queued appends not committed") }
        }
        try database.checkReachable()
        if let lease = database.leases[key], lease.holder == nodeId, lease.epoch == epoch {
            database.leases[key]!.expiresAt = .min
        }
    }

    func deregister(incarnation: Int64) throws {
        try commitNow()
        guard database.brokers[nodeId]?.incarnation == incarnation else { return }
        database.brokers[nodeId] = nil
        for (key, lease) in database.leases where lease.holder == nodeId {
            database.leases[key]!.expiresAt = database.now
        }
    }

    func membership() throws -> (brokers: [RegisteredBroker], leases: [HeldLease]) {
        try database.checkReachable()
        let brokers = database.brokers.filter { $0.value.expiresAt > database.now }.sorted { $0.key < $1.key }.map {
            RegisteredBroker(nodeId: $0.key, listeners: $0.value.listeners, rack: $0.value.rack)
        }
        let leases = database.leases.sorted { $0.key < $1.key }.map { key, lease in
            HeldLease(
                topic: key.topic, partition: key.partition, holder: lease.holder, leaderEpoch: lease.epoch,
                live: database.leaseLive(key))
        }
        return (brokers, leases)
    }

    func takeOver(topic: String, partition: Int32, sessionTimeoutMs: Int64) throws -> Int32? {
        guard let metadata = topicsByName[topic]?.metadata, partition < metadata.partitionCount else { return nil }
        try database.checkReachable()
        let key = TopicPartitionKey(topic, partition)
        guard let epoch = database.takeOver(node: nodeId, key, sessionTimeoutMs: sessionTimeoutMs) else { return nil }
        let log = try open(key, config: try TopicConfig(overrides: metadata.configs), epoch: epoch)
        let previous = topicsByName[topic]!.partitions[Int(partition)]
        topicsByName[topic]!.partitions[Int(partition)] = log
        dirty[key] = nil
        // What the engine's next round does with the log this node held at the older epoch (its
        // committer keeps it dirty until then): the database refuses its queue, so it is fenced
        // and whoever waits on it (a marker, a produce) hears NOT_LEADER instead of waiting for good.
        previous.fence()
        return epoch
    }

    func syncTopics(only name: String?) throws {
        try database.checkReachable()
        for metadata in database.topics.values.sorted(by: { $0.name < $1.name }) where name == nil || metadata.name == name {
            guard topicsByName[metadata.name] == nil else { continue }
            let config = try TopicConfig(overrides: metadata.configs)
            topicsByName[metadata.name] = (metadata, (0..<metadata.partitionCount).map { p in
                SimulatedDatabaseLog(
                    topic: metadata.name, partition: p,
                    cache: MemoryPartitionLog(topic: metadata.name, partition: p, config: config, clock: { [clock] in clock.now }),
                    leaderEpoch: -1, storage: self)
            })
        }
    }

    /// OffsetForLeaderEpoch is not part of the cluster simulation's workload (no simulated
    /// client asks it), so no history is kept.
    func leaderEpochHistory(topic: String, partition: Int32) -> LeaderEpochHistory? { nil }

    func leaderEpoch(topic: String, partition: Int32) -> Int32? {
        guard let log = self.partition(topic: topic, partition: partition) as? SimulatedDatabaseLog else { return nil }
        return log.leaderEpoch >= 0 ? log.leaderEpoch : nil
    }

    func reserveProducerIdBlock(size: Int64) throws -> Int64 {
        try database.checkReachable()
        let name = "producer-ids"
        let end = database.documents[name].map { $0.reduce(Int64(0)) { $0 << 8 | Int64($1) } } ?? 0
        let newEnd = end + size
        database.documents[name] = (0..<8).reversed().map { UInt8(truncatingIfNeeded: newEnd >> ($0 * 8)) }
        return end
    }

    // MARK: LogStorage

    func topics() -> [TopicMetadata] { topicsByName.values.map(\.metadata).sorted { $0.name < $1.name } }

    func topic(named name: String) -> TopicMetadata? {
        if let known = topicsByName[name]?.metadata { return known }
        try? syncTopics(only: name)
        return topicsByName[name]?.metadata
    }

    /// Topics are created by the simulation before the brokers start; the internal ones by the
    /// brokers, with their leases, as `PostgresLogStorage.createTopic` does.
    @discardableResult
    func createTopic(name: String, partitions: Int32, configs: [String: String]) throws -> TopicMetadata {
        try database.checkReachable()
        guard database.topics[name] == nil else { throw StorageError.topicExists(name) }
        let config = try TopicConfig(overrides: configs)
        let metadata = TopicMetadata(name: name, id: KafkaUUID(high: UInt64(database.topics.count + 1), low: 7), partitionCount: partitions, configs: configs)
        database.topics[name] = metadata
        let keys = (0..<partitions).map { TopicPartitionKey(name, $0) }
        for key in keys { database.partitions[key] = .init() }
        let epochs = database.takeLeases(node: nodeId, keys, seconds: Self.leaseSeconds)
        topicsByName[name] = (metadata, keys.map { key in
            SimulatedDatabaseLog(
                topic: name, partition: key.partition,
                cache: MemoryPartitionLog(topic: name, partition: key.partition, config: config, clock: { [clock] in clock.now }),
                leaderEpoch: epochs[key] ?? -1, storage: self)
        })
        return metadata
    }

    func deleteTopic(name: String) throws { throw StorageError.invalidConfig("the cluster simulation deletes no topic") }

    func addPartitions(topic: String, count: Int32) throws -> TopicMetadata {
        throw StorageError.invalidConfig("the cluster simulation adds no partition")
    }

    func setTopicConfigs(topic: String, configs: [String: String]) throws -> TopicMetadata {
        throw StorageError.invalidConfig("the cluster simulation changes no topic config")
    }

    func partition(topic: String, partition: Int32) -> PartitionLog? {
        guard let logs = topicsByName[topic]?.partitions, partition >= 0, Int(partition) < logs.count else { return nil }
        return logs[Int(partition)]
    }

    func loadedPartitions() -> [any PartitionLog] { topicsByName.values.flatMap(\.partitions) }

    func enforceRetention(nowMs: Int64) {}

    func close() throws { closed = true }

    func readState(named name: String) throws -> [UInt8]? {
        try database.checkReachable()
        return database.documents[name]
    }

    func writeState(named name: String, _ bytes: [UInt8]) throws {
        try database.checkReachable()
        database.documents[name] = bytes
    }

    func removeState(named name: String) throws {
        try database.checkReachable()
        database.documents[name] = nil
    }
}
