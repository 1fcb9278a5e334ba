/// The KIP-848 assignors the coordinator runs itself (`group.consumer.assignors`): members name one
/// in ConsumerGroupHeartbeat's ServerAssignor, or get the configured default.
///
/// Neither takes the members' `rackId` into account, as Kafka's own UniformAssignor and
/// RangeAssignor do not (their rack-aware variant exists only in Kafka's tests): racks are stored
/// in the member record and described, nothing more. A single broker holds every replica, so a
/// rack-aware placement would have nothing to align with.
public enum ServerAssignor: String, Sendable, Hashable, CaseIterable {
    case uniform
    case range

    /// What an assignor knows about one member.
    public struct Member: Sendable, Hashable {
        public var memberId: String
        public var instanceId: String?
        /// Topics the member subscribes to that exist.
        public var topics: Set<String>
        /// The member's previous target assignment, which a sticky assignor keeps where it can.
        public var current: PartitionAssignment

        public init(memberId: String, instanceId: String? = nil, topics: Set<String>, current: PartitionAssignment = [:]) {
            self.memberId = memberId
            self.instanceId = instanceId
            self.topics = topics
            self.current = current
        }
    }

    /// The target assignment of every member: each partition of a subscribed topic (`partitionCounts`
    /// holds the existing ones) goes to exactly one member subscribed to its topic.
    public func assign(_ members: [Member], partitionCounts: [String: Int32]) -> [String: PartitionAssignment] {
        switch self {
        case .uniform: UniformAssignor.assign(members, partitionCounts: partitionCounts)
        case .range: RangeAssignor.assign(members, partitionCounts: partitionCounts)
        }
    }
}
