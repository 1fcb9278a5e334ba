import KafkaProtocol
import OnceCore

/// Which broker coordinates a group or a transactional id, and the refusal every coordinator
/// request gets on any other broker. A client that reached a broker no longer (or not yet) leading
/// the key's internal partition is told NOT_COORDINATOR, as Kafka's coordinators answer, so it asks
/// FindCoordinator again instead of acting on state this broker does not hold.
extension Broker {
    /// The `__consumer_offsets` partition holding the group's offsets and membership.
    func groupCoordinatorPartition(_ groupId: String) -> TopicPartitionKey {
        coordinatorPartition(key: groupId, topic: InternalTopics.consumerOffsets)
    }

    /// The `__transaction_state` partition holding the transactional id's state.
    func transactionCoordinatorPartition(_ transactionalId: String) -> TopicPartitionKey {
        coordinatorPartition(key: transactionalId, topic: InternalTopics.transactionState)
    }

    /// NOT_COORDINATOR unless this broker leads the group's `__consumer_offsets` partition and has
    /// loaded its groups; COORDINATOR_LOAD_IN_PROGRESS while it loads them.
    func groupCoordinatorRefusal(_ groupId: String) -> ErrorCode? {
        groups.load.refusal
            ?? CoordinatorPlacement.refusal(cluster: cluster, partition: groupCoordinatorPartition(groupId), loaded: groups.load)
    }

    /// NOT_COORDINATOR unless this broker leads the id's `__transaction_state` partition and has
    /// recovered its transactions; COORDINATOR_LOAD_IN_PROGRESS while it recovers them.
    func transactionCoordinatorRefusal(_ transactionalId: String) -> ErrorCode? {
        transactions.load.refusal
            ?? CoordinatorPlacement.refusal(
                cluster: cluster, partition: transactionCoordinatorPartition(transactionalId), loaded: transactions.load)
    }

    /// Whether this broker coordinates the group: ListGroups lists only those, as each Kafka broker
    /// lists the groups of the partitions it leads and the admin client asks every broker.
    func coordinatesGroup(_ groupId: String) -> Bool {
        groupCoordinatorRefusal(groupId) == nil
    }

    /// Whether this broker coordinates the transactional id (ListTransactions, as ListGroups).
    func coordinatesTransaction(_ transactionalId: String) -> Bool {
        transactionCoordinatorRefusal(transactionalId) == nil
    }

    /// An internal topic not yet created counts as one partition, the count it is created with,
    /// so FindCoordinator and the coordinators agree before and after it exists.
    private func coordinatorPartition(key: String, topic: String) -> TopicPartitionKey {
        CoordinatorPartition.of(key: key, topic: topic, partitions: storage.topic(named: topic)?.partitionCount ?? 1)
    }
}

/// The placement rule on its own, so it is checked against any cluster view.
enum CoordinatorPlacement {
    /// Nil when this broker leads the partition. While the partition has no leader Kafka's
    /// coordinators also answer NOT_COORDINATOR (the partition is not in this broker's owned
    /// set), and FindCoordinator is what says COORDINATOR_NOT_AVAILABLE.
    /// A leader whose state is not loaded (its load failed) is no coordinator either.
    static func refusal(cluster: any ClusterView, partition: TopicPartitionKey, loaded: CoordinatorLoad? = nil) -> ErrorCode? {
        cluster.leads(partition) && loaded?.serving ?? true ? nil : .notCoordinator
    }
}
