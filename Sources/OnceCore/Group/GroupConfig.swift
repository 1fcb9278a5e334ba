/// Coordinator-wide settings that shape every group's behaviour; names follow Kafka's broker configs.
public struct GroupConfig: Sendable, Hashable {
    /// Smallest session timeout a member may ask for (`group.min.session.timeout.ms`). Default: 6 s.
    public var minSessionTimeoutMs: Int32 = 6_000
    /// Largest session timeout a member may ask for (`group.max.session.timeout.ms`). Default: 30 min.
    public var maxSessionTimeoutMs: Int32 = 1_800_000
    /// How long the first rebalance of an empty group waits for more members, so consumers started
    /// together land in one generation instead of rebalancing once per arrival
    /// (`group.initial.rebalance.delay.ms`). Default: 3 s.
    public var initialRebalanceDelayMs: Int32 = 3_000
    /// How long committed offsets of an empty group are kept (`offsets.retention.minutes`).
    /// Default: 7 days.
    public var offsetsRetentionMs: Int64 = 7 * 24 * 3_600_000
    /// Largest metadata string a commit may carry (`offset.metadata.max.bytes`). Default: 4096.
    public var maxOffsetMetadataBytes: Int = 4096

    /// How often a KIP-848 member heartbeats; the coordinator tells it in every answer
    /// (`group.consumer.heartbeat.interval.ms`). Default: 5 s.
    public var consumerHeartbeatIntervalMs: Int32 = 5_000
    /// How long a KIP-848 member may go without a heartbeat before it is removed and its partitions
    /// given to others (`group.consumer.session.timeout.ms`). Default: 45 s.
    public var consumerSessionTimeoutMs: Int32 = 45_000
    /// The server-side assignors a KIP-848 member may name, the first being the default
    /// (`group.consumer.assignors`). Default: uniform, range.
    public var consumerAssignors: [ServerAssignor] = [.uniform, .range]
    /// Most members a KIP-848 group admits (`group.consumer.max.size`). Default: unbounded.
    public var consumerMaxSize: Int = Int.max
    /// Whether a non-empty group converts between the classic and the consumer protocol while its
    /// members keep running (`group.consumer.migration.policy`). Default: bidirectional, as Kafka 4.0.
    public var consumerMigrationPolicy: ConsumerGroupMigrationPolicy = .bidirectional

    public init() {}
}

/// Kafka's `group.consumer.migration.policy` values. Empty groups convert whatever the policy; it
/// governs only groups with members, which keep consuming through the conversion.
public enum ConsumerGroupMigrationPolicy: String, Sendable, Hashable, CaseIterable {
    case bidirectional
    case upgrade
    case downgrade
    case disabled

    /// A consumer-protocol member may join a classic group with members, converting it.
    public var upgradeEnabled: Bool { self == .bidirectional || self == .upgrade }
    /// The last consumer-protocol member leaving turns the group back into a classic one.
    public var downgradeEnabled: Bool { self == .bidirectional || self == .downgrade }
}
