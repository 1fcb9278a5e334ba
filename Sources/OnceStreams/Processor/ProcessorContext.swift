import OnceClient

/// What the processor's handler gets for one input record: the record, a way to emit outputs,
/// and the keyed state of the record's partition. Everything written here commits or aborts
/// with the input offsets.
public struct ProcessorContext: Sendable {
    public let record: ConsumerRecord
    public internal(set) var outputs: [ProducerMessage] = []
    var state: KeyedStateStore

    init(record: ConsumerRecord, state: KeyedStateStore) {
        self.record = record
        self.state = state
    }

    /// Produces `message` in the current transaction.
    public mutating func send(_ message: ProducerMessage) { outputs.append(message) }

    public func value(forKey key: String) -> [UInt8]? { state.value(forKey: key, in: record.topicPartition) }

    /// nil deletes the key. The change reaches the changelog at commit.
    public mutating func setValue(_ value: [UInt8]?, forKey key: String) {
        state.setValue(value, forKey: key, in: record.topicPartition)
    }
}

/// Settings for `ExactlyOnceProcessor`.
public struct ProcessorConfiguration: Sendable {
    public var bootstrapServers: [BootstrapServer]
    public var groupId: String
    public var inputTopics: [String]
    /// One per processor instance, stable across its restarts: it is what fences a crashed
    /// instance's zombie transaction.
    public var transactionalId: String
    /// Default: `CommitPolicy()` (1000 records or 100 ms).
    public var commitPolicy = CommitPolicy()
    /// The changelog of the keyed state; nil turns state off. Default: nil. It gets as many
    /// partitions as the first input topic: a key's state lives in its input partition's changelog.
    public var changelogTopic: String?
    /// Default: 10 s, so a crashed instance's partitions move on quickly.
    public var sessionTimeout: Duration = .seconds(10)
    public var heartbeatInterval: Duration = .seconds(1)
    /// Default: 60 s.
    public var transactionTimeout: Duration = .seconds(60)

    public init(bootstrapServers: [BootstrapServer], groupId: String, inputTopics: [String], transactionalId: String) {
        self.bootstrapServers = bootstrapServers
        self.groupId = groupId
        self.inputTopics = inputTopics
        self.transactionalId = transactionalId
    }
}

/// What a batch handler gets: the records of one batch, in offset order within each partition,
/// a way to emit outputs, and the keyed state of the batch's partitions. Everything written
/// here commits or aborts with the batch's input offsets.
public struct ProcessorBatchContext: Sendable {
    public let records: [ConsumerRecord]
    public internal(set) var outputs: [ProducerMessage] = []
    var state: KeyedStateStore

    init(records: [ConsumerRecord], state: KeyedStateStore) {
        self.records = records
        self.state = state
    }

    /// Produces `message` in the current transaction.
    public mutating func send(_ message: ProducerMessage) { outputs.append(message) }

    /// State lives per input partition: `partition` is the `topicPartition` of a record of
    /// this batch.
    public func value(forKey key: String, in partition: TopicPartition) -> [UInt8]? {
        state.value(forKey: key, in: partition)
    }

    /// nil deletes the key. The change reaches the changelog at commit.
    public mutating func setValue(_ value: [UInt8]?, forKey key: String, in partition: TopicPartition) {
        state.setValue(value, forKey: key, in: partition)
    }
}
