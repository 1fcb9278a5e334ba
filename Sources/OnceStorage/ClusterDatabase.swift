import OnceCore

/// Storage that several brokers share and lead through leases: what the cluster's membership and
/// leadership code needs of the database, beside the log every engine serves. The postgres engine
/// is the production one; the simulator's database is the other, so the cluster code that runs in
/// production is the code the simulator runs. Each call is one transaction of the database: the
/// membership it reads is one snapshot, a lease taken or handed off is taken or handed off whole.
public protocol ClusterDatabase: LogStorage, SharedProducerIdBlocks {
    /// Inserts this broker's row, or takes over a row whose heartbeat expired. A row still live
    /// is waited out once (a restart after SIGKILL finds its own stale row) with `sleep`; if it is
    /// still renewed after that, `DuplicateNodeId` is thrown.
    func register(
        incarnation: Int64, listeners: String, rack: String?, sessionTimeoutMs: Int64,
        sleep: (Int64) async throws -> Void
    ) async throws

    /// Renews this broker's row and every lease it still holds.
    func heartbeat(incarnation: Int64, sessionTimeoutMs: Int64) throws -> HeartbeatOutcome

    /// Gives a partition's lease (held at `epoch`) up once the appends accepted under it committed,
    /// so the broker the placement names takes it at its next heartbeat.
    func handOff(topic: String, partition: Int32, epoch: Int32) throws

    /// Removes this broker's row at a graceful shutdown and releases its leases at once.
    func deregister(incarnation: Int64) throws

    /// Live brokers in node-id order and every lease row, read in one snapshot.
    func membership() throws -> (brokers: [RegisteredBroker], leases: [HeldLease])

    /// Takes a partition's lease at one epoch more if its lease or its holder's heartbeat expired,
    /// and reopens the partition from what the database committed. Nil when another holds it.
    func takeOver(topic: String, partition: Int32, sessionTimeoutMs: Int64) throws -> Int32?

    /// Makes this broker's topics what the database holds (all of them, or the one named).
    func syncTopics(only name: String?) throws

    /// The leader epoch this broker writes a partition under, nil when it does not lead it.
    func leaderEpoch(topic: String, partition: Int32) -> Int32?

    /// Each leader epoch of a partition with the offset it began at, as OffsetForLeaderEpoch answers
    /// from it; nil for a partition this broker has not opened.
    func leaderEpochHistory(topic: String, partition: Int32) -> LeaderEpochHistory?
}

/// What a heartbeat found.
public enum HeartbeatOutcome: Sendable, Equatable {
    /// The row and `leases` leases this broker holds now expire a session from now.
    /// `hadExpired`: the others counted this broker dead for a while (a pause, a lost
    /// database); leases nobody took meanwhile are still its own, since taking one sets its holder.
    case renewed(leases: Int, hadExpired: Bool)
    /// Another broker registered this node id after this one's row expired: this broker is no
    /// longer a member and must stop acting as one.
    case replaced
}

/// A broker's row, as the others read it.
public struct RegisteredBroker: Sendable, Hashable {
    public var nodeId: Int32
    /// The advertised listeners in Kafka's `NAME://host:port,...` form.
    public var listeners: String
    public var rack: String?

    public init(nodeId: Int32, listeners: String, rack: String?) {
        self.nodeId = nodeId
        self.listeners = listeners
        self.rack = rack
    }
}

/// A partition's lease row.
public struct HeldLease: Sendable, Hashable {
    public var topic: String
    public var partition: Int32
    public var holder: Int32
    public var leaderEpoch: Int32
    /// The lease's expiry and its holder's heartbeat have not passed: the holder leads.
    public var live: Bool

    public init(topic: String, partition: Int32, holder: Int32, leaderEpoch: Int32, live: Bool) {
        self.topic = topic
        self.partition = partition
        self.holder = holder
        self.leaderEpoch = leaderEpoch
        self.live = live
    }
}

/// Why `register` refused: another broker with this node id still heartbeats.
public struct DuplicateNodeId: Error, CustomStringConvertible {
    public var nodeId: Int32
    public init(nodeId: Int32) { self.nodeId = nodeId }
    public var description: String {
        "node id \(nodeId) belongs to a live broker on this database (its heartbeat keeps renewing); give each broker its own --node-id"
    }
}
