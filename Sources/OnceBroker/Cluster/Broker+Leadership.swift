import KafkaProtocol
import OnceCore

extension Broker {
    /// Why this broker may not serve a partition's data now, or nil to serve it. As Kafka's
    /// `Partition.getLocalLog`: the client's `currentLeaderEpoch` (-1: none given) is checked first,
    /// FENCED_LEADER_EPOCH when it is older than the partition's and UNKNOWN_LEADER_EPOCH when newer
    /// (this broker has not seen the change yet); then a broker that does not lead the partition
    /// answers NOT_LEADER_OR_FOLLOWER, so the client refreshes Metadata and goes to the leader.
    /// A leader epoch of -1 (one broker, leadership never changes) has nothing to compare against.
    func leadershipRefusal(_ topic: String, _ partition: Int32, currentLeaderEpoch: Int32 = -1) -> ErrorCode? {
        let leader = cluster.leader(of: TopicPartitionKey(topic, partition))
        if let leader, leader.epoch >= 0, currentLeaderEpoch >= 0 {
            if currentLeaderEpoch < leader.epoch { return .fencedLeaderEpoch }
            if currentLeaderEpoch > leader.epoch { return .unknownLeaderEpoch }
        }
        return leader?.nodeId == cluster.nodeId ? nil : .notLeaderOrFollower
    }
}
