import OnceCore

/// Producer state follows leadership: a gained partition is rebuilt from what the database holds
/// (snapshot and replay, on first use), never from what this broker knew before another led it;
/// a lost one is dropped, so nothing is answered from stale sequences.
extension ProducerRegistry: LeadershipListener {
    func leadershipGained(_ partition: TopicPartitionKey, epoch: Int32) throws {
        forget(partition)
    }

    func leadershipLost(_ partition: TopicPartitionKey) {
        forget(partition)
    }
}
