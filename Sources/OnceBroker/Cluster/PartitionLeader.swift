import OnceCore

/// Who leads a partition, and under which leader epoch: the epoch only grows, so a client or a
/// broker holding an older one knows its view is stale.
public struct PartitionLeader: Sendable, Hashable {
    public var nodeId: Int32
    /// -1 when leadership never changes (one broker): clients then skip OffsetForLeaderEpoch.
    public var epoch: Int32

    public init(nodeId: Int32, epoch: Int32) {
        self.nodeId = nodeId
        self.epoch = epoch
    }
}

/// A part of the broker that holds per-partition state (the coordinators, producer state) and must
/// load it before this broker serves a partition and drop it once it no longer may.
///
/// `leadershipGained` runs before the view reports this broker as the partition's leader, so no
/// request is served from state not yet loaded; a throw keeps the partition unserved while this
/// broker keeps the lease, and the cluster calls it again at each heartbeat until it returns or
/// the lease is lost. `leadershipLost` runs after the view stopped reporting this broker as leader and
/// after in-flight appends to the partition finished or were refused.
public protocol LeadershipListener: AnyObject, Sendable {
    func leadershipGained(_ partition: TopicPartitionKey, epoch: Int32) throws
    func leadershipLost(_ partition: TopicPartitionKey)
}
