/// What a JoinGroup request gets back, immediately or once the rebalance completes.
public struct JoinGroupResult: Sendable, Hashable {
    public var error: GroupError?
    public var generationId: Int32 = -1
    public var protocolType: String?
    public var protocolName: String?
    public var leaderId: String = ""
    public var memberId: String = ""
    /// Every member with its subscription for the chosen protocol; only the leader gets them.
    public var members: [JoinedMember] = []

    public init(error: GroupError? = nil, memberId: String = "") {
        self.error = error
        self.memberId = memberId
    }
}

public struct JoinedMember: Sendable, Hashable {
    public var memberId: String
    public var groupInstanceId: String?
    public var metadata: [UInt8]
}

/// What a SyncGroup request gets back.
public struct SyncGroupResult: Sendable, Hashable {
    public var error: GroupError?
    public var protocolType: String?
    public var protocolName: String?
    public var assignment: [UInt8] = []

    public init(error: GroupError? = nil) { self.error = error }
}

/// What the driver must do after an event: answer parked requests, and write the group's metadata
/// through the log so a restart rebuilds it.
public enum GroupAction: Sendable, Hashable {
    case completeJoin(RequestToken, JoinGroupResult)
    case completeSync(RequestToken, SyncGroupResult)
    /// Write the group's current metadata (members, generation, assignments).
    case persistGroup(GroupSnapshot)
}
