import OnceCore

/// The group coordinator is the leader of `__consumer_offsets-0`: a gain replays the offsets and
/// groups the database holds before any request is served from them (the log is looked up anew
/// at every append, so writes go through the partition opened at the new epoch); a loss drops
/// them, so no commit is accepted for a group another broker now coordinates.
extension GroupCoordinator: LeadershipListener {
    static let partition = TopicPartitionKey(topicName, 0)

    func leadershipGained(_ partition: TopicPartitionKey, epoch: Int32) throws {
        guard partition == Self.partition else { return }
        load.set(.loading)
        do {
            try loadGroups()
            load.set(.serving)
        } catch {
            leadershipLost(partition)
            throw error
        }
    }

    func leadershipLost(_ partition: TopicPartitionKey) {
        guard partition == Self.partition else { return }
        load.set(.idle)
        dropGroups()
    }
}
