/// Where a consumer starts in a partition that has no committed offset, or whose offset is no
/// longer in the log.
public enum OffsetResetPolicy: Sendable, Hashable {
    case earliest
    case latest
    /// Fail with OFFSET_OUT_OF_RANGE instead of guessing.
    case none
}

/// How a group divides partitions among its members.
public enum PartitionAssignor: String, Sendable, Hashable, CaseIterable {
    /// Each topic's partitions in contiguous ranges, members in id order (Kafka's "range").
    case range
    /// All partitions dealt out one by one across members (Kafka's "roundrobin").
    case roundRobin = "roundrobin"
}

/// Settings for `KafkaConsumer`.
public struct ConsumerConfiguration: Sendable {
    public var bootstrapServers: [BootstrapServer]

    /// Connection settings shared with every client. Default: `KafkaClientConfiguration()`.
    public var client = KafkaClientConfiguration()

    /// The consumer group, needed for `subscribe` and for committing offsets. Default: nil.
    public var groupId: String?

    /// `.readCommitted` hides records of open and aborted transactions. Default:
    /// `.readUncommitted`, as in every Kafka client.
    public var isolationLevel: IsolationLevel = .readUncommitted

    /// Default: `.latest`, as in Kafka.
    public var autoOffsetReset: OffsetResetPolicy = .latest

    /// How long the broker may hold a fetch waiting for data. Default: 500 ms.
    public var fetchMaxWait: Duration = .milliseconds(500)

    /// Default: 1 byte.
    public var fetchMinBytes: Int32 = 1

    /// Bytes per fetch response. Default: 50 MiB.
    public var fetchMaxBytes: Int32 = 50 * 1024 * 1024

    /// Bytes per partition per fetch. Default: 1 MiB.
    public var maxPartitionFetchBytes: Int32 = 1024 * 1024

    /// Bytes one compressed batch may inflate to before the fetch fails, so that a broker's few
    /// bytes cannot decide how much this process allocates. Default: 256 MiB.
    public var maxUncompressedBatchBytes: Int = RecordSetReader.defaultMaxUncompressedBatchBytes

    /// Members are dropped from the group when no heartbeat arrives for this long. Default: 45 s.
    public var sessionTimeout: Duration = .seconds(45)

    /// Default: 3 s.
    public var heartbeatInterval: Duration = .seconds(3)

    /// How long the group waits for members to rejoin during a rebalance. Default: 60 s.
    public var rebalanceTimeout: Duration = .seconds(60)

    /// Assignors offered to the group, preferred first. Default: `[.range, .roundRobin]`.
    public var assignors: [PartitionAssignor] = [.range, .roundRobin]

    /// Static membership (KIP-345). Default: nil.
    public var groupInstanceId: String?

    /// Join with KIP-848's consumer group protocol (ConsumerGroupHeartbeat, the coordinator
    /// assigns) when the coordinator offers it, else with the classic JoinGroup/SyncGroup. With
    /// it, the broker decides session and heartbeat timing, and `sessionTimeout`,
    /// `heartbeatInterval` and `assignors` do not apply. Default: true.
    public var preferConsumerGroupProtocol = true

    /// Commit consumed positions in the background and on close. Default: true.
    public var enableAutoCommit = true

    /// Default: 5 s.
    public var autoCommitInterval: Duration = .seconds(5)

    public init(bootstrapServers: [BootstrapServer]) {
        self.bootstrapServers = bootstrapServers
    }
}

/// A change of the partitions a group member owns.
public enum RebalanceEvent: Hashable, Sendable {
    /// The member now owns these partitions (the whole new assignment).
    case assigned([TopicPartition])
    /// The member gave these partitions up; their positions were committed first when
    /// auto-commit is on.
    case revoked([TopicPartition])
}
