/// One protocol a member can speak (for consumers, an assignor name) with its subscription bytes.
public struct GroupProtocol: Sendable, Hashable {
    public var name: String
    public var metadata: [UInt8]
    public init(name: String, metadata: [UInt8]) {
        self.name = name
        self.metadata = metadata
    }
}

/// Identifies a parked JoinGroup or SyncGroup request; the driver maps it to the request's promise,
/// so actions stay plain data.
public typealias RequestToken = Int

/// A member of a classic group, as the coordinator tracks it between requests.
public struct GroupMember: Sendable, Hashable {
    public var memberId: String
    /// KIP-345: a static member keeps its identity (and assignment) across restarts.
    public var groupInstanceId: String?
    public var clientId: String
    public var clientHost: String
    public var sessionTimeoutMs: Int32
    public var rebalanceTimeoutMs: Int32
    public var protocolType: String
    /// In the member's order of preference.
    public var protocols: [GroupProtocol]
    public var assignment: [UInt8] = []
    /// When the session was last proven alive (join, sync, heartbeat, commit).
    public var lastHeartbeatMs: Int64
    var awaitingJoin: RequestToken?
    var awaitingSync: RequestToken?

    public init(
        memberId: String, groupInstanceId: String?, clientId: String, clientHost: String, sessionTimeoutMs: Int32,
        rebalanceTimeoutMs: Int32, protocolType: String, protocols: [GroupProtocol], assignment: [UInt8] = [],
        lastHeartbeatMs: Int64
    ) {
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
        self.clientId = clientId
        self.clientHost = clientHost
        self.sessionTimeoutMs = sessionTimeoutMs
        self.rebalanceTimeoutMs = rebalanceTimeoutMs
        self.protocolType = protocolType
        self.protocols = protocols
        self.assignment = assignment
        self.lastHeartbeatMs = lastHeartbeatMs
    }

    public var isAwaitingJoin: Bool { awaitingJoin != nil }

    /// The subscription bytes for `protocol`, empty if the member does not speak it.
    public func metadata(for protocol: String?) -> [UInt8] {
        protocols.first { $0.name == `protocol` }?.metadata ?? []
    }

    func sessionExpired(now: Int64) -> Bool {
        // A parked request proves the member is alive: it is waiting on us, not the other way round.
        awaitingJoin == nil && awaitingSync == nil && now >= lastHeartbeatMs + Int64(sessionTimeoutMs)
    }
}
