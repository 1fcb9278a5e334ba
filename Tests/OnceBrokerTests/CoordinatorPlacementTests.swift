import KafkaProtocol
import Logging
@testable import OnceBroker
import OnceCore
import OnceStorage
import Synchronization
import Testing

/// A cluster view whose leadership of each partition a test moves by hand: this broker (node 1)
/// leads a partition unless the test gave it to node 2 or left it leaderless.
final class MovableLeadership: ClusterView {
    let nodeId: Int32 = 1
    private let moved = Mutex<[TopicPartitionKey: Int32?]>([:])

    func liveMembers() -> [ClusterMember] {
        [ClusterMember(nodeId: 1, endpoints: [:]), ClusterMember(nodeId: 2, endpoints: [:])]
    }

    func leader(of partition: TopicPartitionKey) -> PartitionLeader? {
        let node = moved.withLock { $0[partition] ?? 1 }
        return node.map { PartitionLeader(nodeId: $0, epoch: 3) }
    }

    func addLeadershipListener(_ listener: any LeadershipListener) {}

    /// Node 2 leads the partition from now on (nil: nobody does).
    func move(_ partition: TopicPartitionKey, to node: Int32?) {
        moved.withLock { $0[partition] = .some(node) }
    }

    func giveBack(_ partition: TopicPartitionKey) {
        moved.withLock { $0[partition] = nil }
    }
}

extension BrokerHarness {
    init(cluster: any ClusterView) {
        var config = BrokerConfig()
        config.storage = .memory
        config.groupInitialRebalanceDelayMs = 0
        storage = MemoryLogStorage()
        broker = try! Broker(
            config: config, storage: storage, clusterId: "test-cluster", logger: Logger(label: "test"), cluster: cluster)
    }
}

@Suite("Coordinator placement")
struct CoordinatorPlacementTests {
    typealias G = GroupRequestTests
    static let offsets = TopicPartitionKey(InternalTopics.consumerOffsets, 0)
    static let transactionState = TopicPartitionKey(InternalTopics.transactionState, 0)

    @Test("the refusal follows the partition's leader, whoever it is or while there is none")
    func refusalFollowsLeader() {
        let cluster = MovableLeadership()
        let p = TopicPartitionKey(InternalTopics.consumerOffsets, 0)
        #expect(CoordinatorPlacement.refusal(cluster: cluster, partition: p) == nil)
        cluster.move(p, to: 2)
        #expect(CoordinatorPlacement.refusal(cluster: cluster, partition: p) == .notCoordinator)
        cluster.move(p, to: nil)
        #expect(CoordinatorPlacement.refusal(cluster: cluster, partition: p) == .notCoordinator)
        cluster.giveBack(p)
        #expect(CoordinatorPlacement.refusal(cluster: cluster, partition: p) == nil)
    }

    @Test("a broker that no longer leads __consumer_offsets answers NOT_COORDINATOR to every group request")
    func groupRequestsElsewhere() async throws {
        let cluster = MovableLeadership()
        let h = BrokerHarness(cluster: cluster)
        try G.createTopic(h, "t", partitions: 1)
        let joined = try await G.joinNew(h)
        #expect(joined.errorCode == 0)
        cluster.move(Self.offsets, to: 2)
        let notCoordinator = ErrorCode.notCoordinator.rawValue

        #expect(try await G.heartbeat(h, memberId: joined.memberId, generation: joined.generationId) == notCoordinator)
        #expect(try #require(try await h.send(G.joinRequest(memberId: joined.memberId), version: 5)).errorCode == notCoordinator)
        #expect(try await G.sync(h, memberId: joined.memberId, generation: joined.generationId).errorCode == notCoordinator)

        var commit = OffsetCommitRequest()
        commit.groupId = "g"
        commit.memberId = joined.memberId
        commit.generationIdOrMemberEpoch = joined.generationId
        var ct = OffsetCommitRequest.OffsetCommitRequestTopic()
        ct.name = "t"
        var cp = OffsetCommitRequest.OffsetCommitRequestPartition()
        cp.partitionIndex = 0
        cp.committedOffset = 5
        ct.partitions = [cp]
        commit.topics = [ct]
        let committed = try #require(try await h.send(commit, version: 8))
        #expect(committed.topics.flatMap { $0.partitions.map(\.errorCode) } == [notCoordinator])

        var fetch = OffsetFetchRequest()
        var fg = OffsetFetchRequest.OffsetFetchRequestGroup()
        fg.groupId = "g"
        fetch.groups = [fg]
        #expect(try #require(try await h.send(fetch, version: 8)).groups.map(\.errorCode) == [notCoordinator])
        var oldFetch = OffsetFetchRequest()
        oldFetch.groupId = "g"
        #expect(try #require(try await h.send(oldFetch, version: 5)).errorCode == notCoordinator)

        var describe = DescribeGroupsRequest()
        describe.groups = ["g"]
        #expect(try #require(try await h.send(describe, version: 5)).groups.map(\.errorCode) == [notCoordinator])
        #expect(try #require(try await h.send(ListGroupsRequest(), version: 4)).groups.isEmpty)
        var delete = DeleteGroupsRequest()
        delete.groupsNames = ["g"]
        #expect(try #require(try await h.send(delete, version: 2)).results.map(\.errorCode) == [notCoordinator])
        var leave = LeaveGroupRequest()
        leave.groupId = "g"
        var member = LeaveGroupRequest.MemberIdentity()
        member.memberId = joined.memberId
        leave.members = [member]
        #expect(try #require(try await h.send(leave, version: 3)).errorCode == notCoordinator)

        var heartbeat = ConsumerGroupHeartbeatRequest()
        heartbeat.groupId = "modern"
        heartbeat.memberEpoch = 0
        heartbeat.rebalanceTimeoutMs = 10_000
        heartbeat.subscribedTopicNames = ["t"]
        #expect(try #require(try await h.send(heartbeat, version: 0)).errorCode == notCoordinator)
        var modern = ConsumerGroupDescribeRequest()
        modern.groupIds = ["modern"]
        #expect(try #require(try await h.send(modern, version: 0)).groups.map(\.errorCode) == [notCoordinator])

        // Back on this broker, the group it kept (nothing was deleted above) is served again.
        cluster.giveBack(Self.offsets)
        #expect(try #require(try await h.send(ListGroupsRequest(), version: 4)).groups.map(\.groupId) == ["g"])
        #expect(try await G.sync(h, memberId: joined.memberId, generation: joined.generationId).errorCode == 0)
    }

    @Test("a broker that does not lead __transaction_state answers NOT_COORDINATOR to every transaction request")
    func transactionRequestsElsewhere() async throws {
        let cluster = MovableLeadership()
        let h = BrokerHarness(cluster: cluster)
        try G.createTopic(h, "t", partitions: 1)
        let producer = try await h.initProducerId(transactionalId: "tx")
        #expect(producer.errorCode == 0)
        cluster.move(Self.transactionState, to: 2)
        let notCoordinator = ErrorCode.notCoordinator.rawValue

        #expect(try await h.initProducerId(transactionalId: "tx").errorCode == notCoordinator)
        // An idempotent producer needs no coordinator: any broker hands it an id.
        #expect(try await h.initProducerId().errorCode == 0)

        var txn = TransactionRequestTests.Txn(h: h, id: "tx")
        txn.producerId = producer.producerId
        txn.epoch = producer.producerEpoch
        #expect(try await txn.addPartitions("t", [0]) == [notCoordinator])
        #expect(try await txn.end(commit: true) == notCoordinator)

        // The form a partition leader sends the coordinator (KIP-890 verification) is refused per partition.
        var verify = AddPartitionsToTxnRequest()
        var asked = AddPartitionsToTxnRequest.AddPartitionsToTxnTransaction()
        asked.transactionalId = "tx"
        asked.producerId = producer.producerId
        asked.producerEpoch = producer.producerEpoch
        asked.verifyOnly = true
        var topic = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic()
        topic.name = "t"
        topic.partitions = [0]
        asked.topics = [topic]
        verify.transactions = [asked]
        let verified = try #require(try await h.send(verify, version: 4))
        #expect(verified.errorCode == 0)
        #expect(verified.resultsByTransaction.flatMap { $0.topicResults.flatMap { $0.resultsByPartition.map(\.partitionErrorCode) } } == [notCoordinator])

        var offsets = AddOffsetsToTxnRequest()
        offsets.transactionalId = "tx"
        offsets.producerId = producer.producerId
        offsets.producerEpoch = producer.producerEpoch
        offsets.groupId = "g"
        #expect(try #require(try await h.send(offsets, version: 3)).errorCode == notCoordinator)

        var describe = DescribeTransactionsRequest()
        describe.transactionalIds = ["tx"]
        #expect(try #require(try await h.send(describe, version: 0)).transactionStates.map(\.errorCode) == [notCoordinator])
        #expect(try #require(try await h.send(ListTransactionsRequest(), version: 0)).transactionStates.isEmpty)

        cluster.giveBack(Self.transactionState)
        #expect(try #require(try await h.send(ListTransactionsRequest(), version: 0)).transactionStates.map(\.transactionalId) == ["tx"])
        #expect(try await txn.addPartitions("t", [0]) == [0])
    }

    @Test("TxnOffsetCommit goes to the group's coordinator, not the transaction's")
    func txnOffsetCommitFollowsTheGroup() async throws {
        let cluster = MovableLeadership()
        let h = BrokerHarness(cluster: cluster)
        try G.createTopic(h, "t", partitions: 1)
        let producer = try await h.initProducerId(transactionalId: "tx")
        cluster.move(Self.offsets, to: 2)
        for version: Int16 in [3, 5] {
            var commit = TxnOffsetCommitRequest()
            commit.transactionalId = "tx"
            commit.groupId = "g"
            commit.producerId = producer.producerId
            commit.producerEpoch = producer.producerEpoch
            var t = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic()
            t.name = "t"
            var p = TxnOffsetCommitRequest.TxnOffsetCommitRequestPartition()
            p.partitionIndex = 0
            p.committedOffset = 1
            t.partitions = [p]
            commit.topics = [t]
            let answer = try #require(try await h.send(commit, version: version))
            #expect(answer.topics.flatMap { $0.partitions.map(\.errorCode) } == [ErrorCode.notCoordinator.rawValue])
        }
        // The refused v5 commit did not add the offsets partition to the transaction.
        var describe = DescribeTransactionsRequest()
        describe.transactionalIds = ["tx"]
        #expect(try #require(try await h.send(describe, version: 0)).transactionStates.first?.topics.isEmpty == true)
    }
}
