import OnceCore

/// The cluster of the file and memory engines: this broker alone, leading every partition for good.
/// Its leader epoch is -1, so clients never validate positions with OffsetForLeaderEpoch against a
/// leader that cannot change.
final class SingleBrokerCluster: ClusterView {
    let nodeId: Int32
    private let rack: String?
    private let listenerNames: [String]
    private let addresses: AdvertisedListeners

    init(nodeId: Int32, rack: String?, listeners: [Listener], addresses: AdvertisedListeners) {
        self.nodeId = nodeId
        self.rack = rack
        self.listenerNames = listeners.map(\.name)
        self.addresses = addresses
    }

    func liveMembers() -> [ClusterMember] {
        // Read at each call: a listener bound to port 0 learns its port after the view is made.
        let endpoints = Dictionary(uniqueKeysWithValues: listenerNames.map { ($0, addresses.address(for: $0)) })
        return [ClusterMember(nodeId: nodeId, endpoints: endpoints, rack: rack)]
    }

    func leader(of partition: TopicPartitionKey) -> PartitionLeader? {
        PartitionLeader(nodeId: nodeId, epoch: -1)
    }

    func addLeadershipListener(_ listener: any LeadershipListener) {}
}
