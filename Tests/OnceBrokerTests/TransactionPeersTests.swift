import KafkaProtocol
import Logging
import NIOCore
import NIOPosix
@testable import OnceBroker
import OnceCore
import Testing

@Suite("Transaction requests between brokers: markers per leader, answers per partition, Kafka's codes")
struct TransactionPeersTests {
    @Test("Markers go to each partition's leader; each partition gets its answer, a leaderless one NOT_LEADER_OR_FOLLOWER unsent")
    func markersPerLeader() async throws {
        let peer = try await FakePeer.start(.answer)
        let cluster = PeerCluster(peer: peer.address, ledByPeer: [TopicPartitionKey("orders", 0), TopicPartitionKey("orders", 3)])
        let (peers, client) = Self.peers(cluster)
        defer { client.shutdown() }
        let codes = await peers.write(TransactionPeers.Markers(
            producerId: 9, producerEpoch: 2, commit: true, coordinatorEpoch: 4, transactionVersion: 0,
            partitions: [TopicPartitionKey("orders", 0), TopicPartitionKey("orders", 3), TopicPartitionKey("orders", 5)]))
        // The fake peer answers NOT_LEADER_OR_FOLLOWER for every partition it is sent.
        #expect(codes == [
            TopicPartitionKey("orders", 0): .notLeaderOrFollower, TopicPartitionKey("orders", 3): .notLeaderOrFollower,
            TopicPartitionKey("orders", 5): .notLeaderOrFollower,
        ])
        #expect(peer.connections == 1)
        #expect(peer.partitionsSent == 2, "the leaderless partition is not sent")
        try await peer.stop()
    }

    @Test("A leader that never answers leaves each of its partitions NETWORK_EXCEPTION, to be sent again")
    func silentLeader() async throws {
        let peer = try await FakePeer.start(.silent)
        let partition = TopicPartitionKey("orders", 1)
        let (peers, client) = Self.peers(PeerCluster(peer: peer.address, ledByPeer: [partition]), timeout: .milliseconds(200))
        defer { client.shutdown() }
        let codes = await peers.write(TransactionPeers.Markers(
            producerId: 9, producerEpoch: 2, commit: false, coordinatorEpoch: 0, transactionVersion: 2,
            partitions: [partition]))
        #expect(codes == [partition: .networkException])
        try await peer.stop()
    }

    @Test("The marker retry waits double per failure, up to its cap")
    func retryBackoff() {
        let backoff = TransactionService.MarkerRetryBackoff(base: 100, max: 1000)
        #expect([1, 2, 3, 4, 5, 60].map(backoff.delay) == [100, 200, 400, 800, 1000, 1000])
    }

    @Test("A remote coordinator's verdict reaches the producer as Kafka's partition leader passes it on")
    func produceCodes() {
        #expect(Broker.produceVerificationCode(.producerFenced, version: 9) == .invalidProducerEpoch)
        #expect(Broker.produceVerificationCode(.transactionAbortable, version: 11) == .transactionAbortable)
        #expect(Broker.produceVerificationCode(.transactionAbortable, version: 10) == .invalidTxnState)
        for code in [ErrorCode.notCoordinator, .coordinatorNotAvailable, .coordinatorLoadInProgress, .networkException] {
            #expect(Broker.produceVerificationCode(code, version: 12) == .notEnoughReplicas)
        }
        #expect(Broker.produceVerificationCode(.concurrentTransactions, version: 11) == .notEnoughReplicas)
        #expect(Broker.produceVerificationCode(.concurrentTransactions, version: 12) == .concurrentTransactions)
        #expect(Broker.produceVerificationCode(.invalidProducerIdMapping, version: 9) == .invalidProducerIdMapping)
        #expect(Broker.produceVerificationCode(.none, version: 9) == .none)
    }

    static func peers(_ cluster: PeerCluster, timeout: TimeAmount = .seconds(30)) -> (TransactionPeers, InterBrokerClient) {
        var settings = InterBrokerClient.Settings(listenerName: "PLAINTEXT", clientId: "once-broker-1")
        settings.requestTimeout = timeout
        let client = InterBrokerClient(settings: settings, cluster: cluster, group: MultiThreadedEventLoopGroup.singleton)
        return (TransactionPeers(transport: client, cluster: cluster, logger: Logger(label: "test")), client)
    }
}

/// Node 1 is this broker; node 2, the fake peer, leads `ledByPeer`; every other partition has no leader.
final class PeerCluster: ClusterView {
    let nodeId: Int32 = 1
    let peer: HostPort
    let ledByPeer: Set<TopicPartitionKey>

    init(peer: HostPort, ledByPeer: Set<TopicPartitionKey>) {
        self.peer = peer
        self.ledByPeer = ledByPeer
    }

    func liveMembers() -> [ClusterMember] {
        [ClusterMember(nodeId: 1, endpoints: ["PLAINTEXT": HostPort(host: "127.0.0.1", port: 1)]),
         ClusterMember(nodeId: 2, endpoints: ["PLAINTEXT": peer])]
    }

    func leader(of partition: TopicPartitionKey) -> PartitionLeader? {
        ledByPeer.contains(partition) ? PartitionLeader(nodeId: 2, epoch: 3) : nil
    }

    func addLeadershipListener(_ listener: any LeadershipListener) {}
}
