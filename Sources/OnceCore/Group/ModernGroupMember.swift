/// A member of a KIP-848 group: its subscription, its epoch, and the partitions it owns or must
/// give up. Reconciliation moves it towards the group's target assignment one step per heartbeat.
public struct ModernGroupMember: Sendable, Hashable {
    /// Where the member stands against its target assignment, named as Kafka's MemberState.
    public enum State: Int8, Sendable, Hashable {
        /// Owns its target assignment at the current target epoch.
        case stable = 0
        /// Must first give up partitions (kept at its old epoch until it reports them gone).
        case unrevokedPartitions = 1
        /// At the target epoch, waiting for partitions other members have not released yet.
        case unreleasedPartitions = 2
    }

    public var memberId: String
    public var instanceId: String?
    public var rackId: String?
    public var clientId: String
    public var clientHost: String
    public var rebalanceTimeoutMs: Int32
    public var subscribedTopicNames: [String]
    public var subscribedTopicRegex: String?
    public var serverAssignor: String?
    /// Set for a member that speaks the classic protocol (JoinGroup/SyncGroup/Heartbeat) inside a
    /// consumer group; nil for a ConsumerGroupHeartbeat member.
    public var classic: ClassicMemberMetadata?

    public var state: State = .stable
    public var memberEpoch: Int32 = 0
    /// The epoch before the last bump: a heartbeat still carrying it lost only our last answer.
    public var previousMemberEpoch: Int32 = 0
    /// Partitions the member owns (and, while revoking, keeps).
    public var assigned: PartitionAssignment = [:]
    /// Partitions the member was told to give up and has not yet reported gone.
    public var pendingRevocation: PartitionAssignment = [:]

    /// When the session was last proven alive.
    public var lastHeartbeatMs: Int64
    /// A member slow to revoke is fenced at this time (its rebalance timeout after being asked).
    public var revocationDeadlineMs: Int64?
    /// A classic member told to rejoin, or joined and not yet synced, is fenced at this time (its
    /// rebalance timeout), as Kafka's join and sync timeouts fence it.
    public var rejoinDeadlineMs: Int64?

    public init(
        memberId: String, instanceId: String? = nil, rackId: String? = nil, clientId: String = "",
        clientHost: String = "", rebalanceTimeoutMs: Int32 = 300_000, subscribedTopicNames: [String] = [],
        subscribedTopicRegex: String? = nil, serverAssignor: String? = nil, lastHeartbeatMs: Int64
    ) {
        self.memberId = memberId
        self.instanceId = instanceId
        self.rackId = rackId
        self.clientId = clientId
        self.clientHost = clientHost
        self.rebalanceTimeoutMs = rebalanceTimeoutMs
        self.subscribedTopicNames = subscribedTopicNames
        self.subscribedTopicRegex = subscribedTopicRegex
        self.serverAssignor = serverAssignor
        self.lastHeartbeatMs = lastHeartbeatMs
    }

    /// A static member that left with epoch -2 keeps its place (and partitions) until it returns
    /// or its session runs out.
    public var hasLeftTemporarily: Bool { memberEpoch == ModernGroup.leaveStaticEpoch }

    /// Every partition the member still holds, including the ones it must give up.
    public var owned: PartitionAssignment { assigned.union(pendingRevocation) }
}

/// What a classic member brings that the consumer protocol has no field for: its own session
/// timeout and the protocols (assignor names and subscriptions) it joined with, so the group can
/// turn back into a classic one. Kafka keeps the same in ConsumerGroupMemberMetadata's tagged field.
public struct ClassicMemberMetadata: Sendable, Hashable {
    public var sessionTimeoutMs: Int32
    public var protocols: [GroupProtocol]

    public init(sessionTimeoutMs: Int32, protocols: [GroupProtocol]) {
        self.sessionTimeoutMs = sessionTimeoutMs
        self.protocols = protocols
    }
}
