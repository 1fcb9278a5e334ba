import OnceCore

/// What this broker knows of the cluster it belongs to: who is alive and who leads each partition.
/// Handlers read it to answer Metadata, FindCoordinator and DescribeCluster and to refuse requests
/// for partitions led elsewhere; it never blocks on I/O (the membership and lease loops refresh it
/// in the background).
public protocol ClusterView: AnyObject, Sendable {
    /// This broker's `--node-id`.
    var nodeId: Int32 { get }
    /// Live brokers in node-id order, this one included while it serves.
    func liveMembers() -> [ClusterMember]
    /// The partition's current leader, nil while none holds it (a lease expired and not yet taken).
    func leader(of partition: TopicPartitionKey) -> PartitionLeader?
    /// Registers a part to be told of this broker's leadership changes. A view whose leadership
    /// never changes (one broker leads everything from before it serves) never calls it: those
    /// parts load their state at start.
    func addLeadershipListener(_ listener: any LeadershipListener)
    /// Whether this view tells its listeners of every partition this broker comes to lead, those
    /// it held at start included: the coordinators then load on those calls instead of at start.
    var announcesLeadership: Bool { get }
    /// The epochs this broker's copy of the partition was led under, for OffsetForLeaderEpoch;
    /// nil where leadership never changes (no epoch is ever handed out).
    func leaderEpochHistory(of partition: TopicPartitionKey) -> LeaderEpochHistory?
}

extension ClusterView {
    /// A view whose leadership never changes never announces it.
    public var announcesLeadership: Bool { false }

    public func leaderEpochHistory(of partition: TopicPartitionKey) -> LeaderEpochHistory? { nil }

    /// Whether this broker leads the partition now.
    public func leads(_ partition: TopicPartitionKey) -> Bool {
        leader(of: partition)?.nodeId == nodeId
    }

    /// The live member with `nodeId`, if any.
    public func member(_ nodeId: Int32) -> ClusterMember? {
        liveMembers().first { $0.nodeId == nodeId }
    }
}
