/// The durable form of a group's membership: what the coordinator writes through the log after each
/// completed rebalance, and what a restart rebuilds the group from.
public struct GroupSnapshot: Sendable, Hashable {
    public struct Member: Sendable, Hashable {
        public var memberId: String
        public var groupInstanceId: String?
        public var clientId: String
        public var clientHost: String
        public var rebalanceTimeoutMs: Int32
        public var sessionTimeoutMs: Int32
        /// The member's metadata for the group's chosen protocol.
        public var subscription: [UInt8]
        public var assignment: [UInt8]

        public init(
            memberId: String, groupInstanceId: String?, clientId: String, clientHost: String,
            rebalanceTimeoutMs: Int32, sessionTimeoutMs: Int32, subscription: [UInt8], assignment: [UInt8]
        ) {
            self.memberId = memberId
            self.groupInstanceId = groupInstanceId
            self.clientId = clientId
            self.clientHost = clientHost
            self.rebalanceTimeoutMs = rebalanceTimeoutMs
            self.sessionTimeoutMs = sessionTimeoutMs
            self.subscription = subscription
            self.assignment = assignment
        }
    }

    public var groupId: String
    public var protocolType: String?
    public var generationId: Int32
    public var protocolName: String?
    public var leaderId: String?
    /// When the group entered its current state; offsets of an empty group expire relative to it.
    public var stateTimestampMs: Int64
    public var members: [Member]

    public init(
        groupId: String, protocolType: String?, generationId: Int32, protocolName: String?, leaderId: String?,
        stateTimestampMs: Int64, members: [Member]
    ) {
        self.groupId = groupId
        self.protocolType = protocolType
        self.generationId = generationId
        self.protocolName = protocolName
        self.leaderId = leaderId
        self.stateTimestampMs = stateTimestampMs
        self.members = members
    }
}

/// A partition whose position a group commits.
public struct GroupPartition: Sendable, Hashable, Comparable {
    public var topic: String
    public var partition: Int32
    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public static func < (a: GroupPartition, b: GroupPartition) -> Bool {
        (a.topic, a.partition) < (b.topic, b.partition)
    }
}

/// A committed position: the next offset the group will consume, plus what the client attached.
public struct CommittedOffset: Sendable, Hashable {
    public var offset: Int64
    public var leaderEpoch: Int32
    public var metadata: String?
    public var commitTimestampMs: Int64

    public init(offset: Int64, leaderEpoch: Int32 = -1, metadata: String?, commitTimestampMs: Int64) {
        self.offset = offset
        self.leaderEpoch = leaderEpoch
        self.metadata = metadata
        self.commitTimestampMs = commitTimestampMs
    }
}
