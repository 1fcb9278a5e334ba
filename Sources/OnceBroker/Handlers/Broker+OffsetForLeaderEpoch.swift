import KafkaProtocol
import OnceCore

/// OffsetForLeaderEpoch: where a leader epoch's writes end, so a consumer whose position came from
/// an older leader learns after a change whether the log it read was cut short (KIP-320).
extension Broker {
    func offsetForLeaderEpoch(_ req: OffsetForLeaderEpochRequest, _ request: Request) -> OffsetForLeaderEpochResponse {
        var response = OffsetForLeaderEpochResponse()
        let auth = authorization(request)
        // As Kafka: replicas were once the only callers (CLUSTER_ACTION); consumers ask with
        // DESCRIBE on the topic. The replicaId is not consulted: Kafka answers a follower, a
        // consumer (-1) and a debugging client (-2) alike, from the leader only.
        let asReplica = auth.allowsCluster(.clusterAction)
        response.topics = req.topics.map { t in
            var topic = OffsetForLeaderEpochResponse.OffsetForLeaderTopicResult()
            topic.topic = t.topic
            let allowed = asReplica || auth.allowsTopic(.describe, t.topic)
            topic.partitions = t.partitions.map { p in
                var result = OffsetForLeaderEpochResponse.EpochEndOffset()
                result.partition = p.partition
                let code = allowed ? epochEnd(t.topic, p, into: &result) : .topicAuthorizationFailed
                if code != .none {
                    result.errorCode = code.rawValue
                    metrics.error(.offsetForLeaderEpoch, code)
                }
                return result
            }
            return topic
        }
        return response
    }

    /// Kafka's `Partition.lastOffsetForLeaderEpoch`: the leadership checks Fetch makes, then the
    /// history's answer over the log as it stands (its deleted start trims the history). A broker
    /// with no history (one whose epoch never changes) answers no epoch, as Kafka does for a log
    /// without leader epochs.
    private func epochEnd(
        _ topic: String, _ p: OffsetForLeaderEpochRequest.OffsetForLeaderPartition,
        into result: inout OffsetForLeaderEpochResponse.EpochEndOffset
    ) -> ErrorCode {
        guard let log = storage.partition(topic: topic, partition: p.partition) else { return .unknownTopicOrPartition }
        if let refusal = leadershipRefusal(topic, p.partition, currentLeaderEpoch: p.currentLeaderEpoch) { return refusal }
        let history = cluster.leaderEpochHistory(of: TopicPartitionKey(topic, p.partition)) ?? LeaderEpochHistory()
        let answer = history.truncatedFromStart(log.logStartOffset).endOffset(for: p.leaderEpoch, logEndOffset: log.logEndOffset)
        result.leaderEpoch = answer.epoch
        result.endOffset = answer.endOffset
        return .none
    }
}
