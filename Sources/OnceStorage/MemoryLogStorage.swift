import KafkaProtocol
import NIOCore
import Synchronization

/// The in-memory engine: the file engine's semantics without a disk, for tests and simulation.
///
/// It models the page cache a power cut sees: appends are readable at once but durable only once
/// synced (`sync`, or `waitDurable` under the `always` policy, which syncs as the file engine's
/// group commit does); `afterPowerLoss()` is the engine a restart then finds, holding only what was
/// synced. Topic metadata, deleted segments and state documents are durable when written, as the
/// file engine makes them. A process crash loses nothing: restart on the same instance.
public final class MemoryLogStorage: LogStorage {
    private struct Topic {
        var metadata: TopicMetadata
        var partitions: [MemoryPartitionLog]
    }

    private let topicsByName = Mutex<[String: Topic]>([:])
    private let documents = Mutex<[String: [UInt8]]>([:])

    public let flushPolicy: FlushPolicy
    let cleaner = Mutex<FlushTimer?>(nil)
    let cleanerStatsBox = CleanerStatsBox()
    /// Where topic ids come from and what time segments are stamped with: seeded and simulated
    /// under simulation, so a run depends on its seed alone.
    public let random: RandomSource
    public let clock: @Sendable () -> Int64

    public init(
        flushPolicy: FlushPolicy = .none, random: RandomSource = .system,
        clock: @escaping @Sendable () -> Int64 = currentTimeMillis
    ) {
        self.flushPolicy = flushPolicy
        self.random = random
        self.clock = clock
    }

    /// What a restart after a power cut finds: every topic and document, each partition cut back to
    /// its last sync plus whatever the kernel happened to write back: `writeback(n)` of its `n`
    /// unsynced batches, oldest first (a torn batch is one a restart cuts off, so it counts as lost).
    public func afterPowerLoss(writeback: (_ unsyncedBatches: Int) -> Int = { _ in 0 }) -> MemoryLogStorage {
        let survivor = MemoryLogStorage(flushPolicy: flushPolicy, random: random, clock: clock)
        let topics = topicsByName.withLock { $0 }
        var kept: [String: Topic] = [:]
        for (name, topic) in topics.sorted(by: { $0.key < $1.key }) {
            kept[name] = Topic(metadata: topic.metadata, partitions: topic.partitions.map { $0.durablePart(writeback: writeback) })
        }
        survivor.topicsByName.withLock { $0 = kept }
        survivor.documents.withLock { $0 = documents.withLock { $0 } }
        return survivor
    }

    public func topics() -> [TopicMetadata] {
        topicsByName.withLock { $0.values.map(\.metadata) }.sorted { $0.name < $1.name }
    }

    public func topic(named name: String) -> TopicMetadata? {
        topicsByName.withLock { $0[name]?.metadata }
    }

    @discardableResult
    public func createTopic(name: String, partitions: Int32, configs: [String: String]) throws -> TopicMetadata {
        if let problem = TopicName.validationError(name) { throw StorageError.invalidConfig(problem) }
        guard partitions > 0 else { throw StorageError.invalidConfig("partition count \(partitions) must be positive") }
        let config = try TopicConfig(overrides: configs)
        return try topicsByName.withLock { topics in
            guard topics[name] == nil else { throw StorageError.topicExists(name) }
            let metadata = TopicMetadata(name: name, id: random.uuid(), partitionCount: partitions, configs: configs)
            let logs = (0..<partitions).map {
                MemoryPartitionLog(topic: name, partition: $0, config: config, flushPolicy: flushPolicy, clock: clock)
            }
            topics[name] = Topic(metadata: metadata, partitions: logs)
            return metadata
        }
    }

    public func deleteTopic(name: String) throws {
        let removed = topicsByName.withLock { $0.removeValue(forKey: name) }
        guard let removed else { throw StorageError.unknownTopic(name) }
        for log in removed.partitions { log.markDeleted() }
    }

    @discardableResult
    public func addPartitions(topic name: String, count: Int32) throws -> TopicMetadata {
        try topicsByName.withLock { topics in
            guard var topic = topics[name] else { throw StorageError.unknownTopic(name) }
            let current = topic.metadata.partitionCount
            guard count > current else {
                throw StorageError.invalidPartitions("topic '\(name)' has \(current) partitions; the new count must be larger")
            }
            let config = try TopicConfig(overrides: topic.metadata.configs)
            topic.partitions += (current..<count).map { MemoryPartitionLog(topic: name, partition: $0, config: config, flushPolicy: flushPolicy, clock: clock) }
            topic.metadata.partitionCount = count
            topics[name] = topic
            return topic.metadata
        }
    }

    @discardableResult
    public func setTopicConfigs(topic name: String, configs: [String: String]) throws -> TopicMetadata {
        let config = try TopicConfig(overrides: configs)
        return try topicsByName.withLock { topics in
            guard var topic = topics[name] else { throw StorageError.unknownTopic(name) }
            topic.metadata.configs = configs
            topics[name] = topic
            for log in topic.partitions { log.updateConfig(config) }
            return topic.metadata
        }
    }

    /// Every partition: memory logs have nothing to load.
    public func loadedPartitions() -> [any PartitionLog] {
        topicsByName.withLock { $0.values.flatMap(\.partitions) }
    }

    public func partition(topic: String, partition: Int32) -> PartitionLog? {
        topicsByName.withLock { topics in
            guard let logs = topics[topic]?.partitions, partition >= 0, Int(partition) < logs.count else { return nil }
            return logs[Int(partition)]
        }
    }

    public func enforceRetention(nowMs: Int64) {
        let logs = topicsByName.withLock { $0.values.flatMap(\.partitions) }
        for log in logs { log.enforceRetention(nowMs: nowMs) }
    }

    public func close() throws {
        cleaner.withLock { timer in
            defer { timer = nil }
            return timer
        }?.cancelAndWait()
    }

    func compactedPartitions() -> [MemoryPartitionLog] {
        topicsByName.withLock { topics in
            topics.keys.sorted().flatMap { name in topics[name]!.partitions.filter { $0.isCompacted } }
        }
    }

    public func readState(named name: String) throws -> [UInt8]? {
        try StateName.validate(name)
        return documents.withLock { $0[name] }
    }

    public func writeState(named name: String, _ bytes: [UInt8]) throws {
        try StateName.validate(name)
        documents.withLock { $0[name] = bytes }
    }

    public func removeState(named name: String) throws {
        try StateName.validate(name)
        _ = documents.withLock { $0.removeValue(forKey: name) }
    }
}
