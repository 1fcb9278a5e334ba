import KafkaProtocol
import NIOCore
@testable import OnceBroker
import OnceCore
import OnceStorage
import Testing

@Suite("The operator's snapshot of the broker")
struct BrokerSnapshotTests {
    typealias H = BrokerHarness
    typealias Txn = TransactionRequestTests.Txn

    static let health = BrokerSnapshot.Health(
        version: "test", clusterId: "test-cluster", nodeId: 1, listen: "127.0.0.1:9092", startedAtMs: 0, uptimeMs: 0,
        openConnections: 0)

    @Test("an open transaction holds its partition's LSO and is listed until it commits")
    func openTransaction() async throws {
        let h = H()
        try h.storage.createTopic(name: "out", partitions: 2, configs: [:])
        _ = try await h.produce(topic: "out", values: ["a", "b"])
        var tx = Txn(h: h, id: "app")
        #expect(try await tx.initialize().errorCode == 0)
        #expect(try await tx.addPartitions("out", [0]) == [0])
        #expect(try await tx.produce("out", ["c", "d", "e"]).errorCode == 0)

        var s = try h.broker.snapshot(health: Self.health)
        let topic = try #require(s.topics.first { $0.name == "out" })
        #expect(topic.partitions.map(\.highWatermark) == [5, 0])
        #expect(topic.partitions.map(\.lastStableOffset) == [2, 0])
        #expect(topic.partitions[0].producers.map(\.currentTransactionStartOffset) == [2])
        #expect(s.transactions.map(\.transactionalId) == ["app"])
        #expect(s.transactions[0].state == "Ongoing")
        #expect(s.transactions[0].producerId == tx.producerId)
        #expect(s.transactions[0].holdingLastStableOffset == [BrokerSnapshot.PartitionRef(topic: "out", partition: 0)])
        #expect(s.hanging.isEmpty, "a live transaction is not hanging")

        #expect(try await tx.end(commit: true) == 0)
        s = try h.broker.snapshot(health: Self.health)
        #expect(s.transactions.isEmpty)
        #expect(s.topics.first { $0.name == "out" }?.partitions[0].lastStableOffset == 6, "past the marker")
    }

    @Test("a consumer-protocol assignment decodes to its partitions; other bytes to none")
    func assignment() {
        var a = ConsumerProtocolAssignment()
        var t = ConsumerProtocolAssignment.TopicPartition()
        t.topic = "out"
        t.partitions = [2, 0]
        a.assignedPartitions = [t]
        var buffer = ByteBuffer()
        buffer.writeInteger(Int16(1))
        a.encode(into: &buffer, version: 1)
        #expect(Broker.consumerAssignment(Array(buffer.readableBytesView)) == [
            BrokerSnapshot.PartitionRef(topic: "out", partition: 0), BrokerSnapshot.PartitionRef(topic: "out", partition: 2),
        ])
        #expect(Broker.consumerAssignment([0, 1, 0xff]) == [])
        #expect(Broker.consumerAssignment([]) == [])
    }
}
