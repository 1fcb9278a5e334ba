import KafkaProtocol
import NIOCore
@testable import OnceBroker
import OnceCore
import OnceStorage
import Testing

/// The transaction rules Kafka applies that a client sees only at the edges: what read_committed
/// ListOffsets may answer, what a partition refuses, what the admin APIs list.
@Suite("Transaction rules through the broker")
struct TransactionRulesRequestTests {
    typealias H = BrokerHarness
    typealias Txn = TransactionRequestTests.Txn

    static func listOffset(_ h: H, _ topic: String, timestamp: Int64, isolation: Int8) async throws -> Int64 {
        var p = ListOffsetsRequest.ListOffsetsPartition()
        p.partitionIndex = 0
        p.timestamp = timestamp
        var t = ListOffsetsRequest.ListOffsetsTopic()
        t.name = topic
        t.partitions = [p]
        var req = ListOffsetsRequest()
        req.replicaId = -1
        req.isolationLevel = isolation
        req.topics = [t]
        return try #require(try await h.send(req, version: 7)).topics[0].partitions[0].offset
    }

    @Test("read_committed ListOffsets by timestamp or max timestamp answers -1 at or past the LSO")
    func listOffsetsStopsAtTheLastStableOffset() async throws {
        let h = H()
        try h.storage.createTopic(name: "t", partitions: 1, configs: [:])
        _ = try await h.produce(topic: "t", values: ["plain"], timestamp: 1_000)
        var tx = Txn(h: h, id: "app")
        _ = try await tx.initialize()
        #expect(try await tx.addPartitions("t", [0]) == [0])
        let batch = RecordBatch.encode(
            records: [Record(offsetDelta: 0, key: nil, value: Array("open".utf8))], baseTimestamp: 2_000,
            producerId: tx.producerId, producerEpoch: tx.epoch, baseSequence: 0, isTransactional: true)
        #expect(try await h.produce(topic: "t", records: batch)?.errorCode == 0)
        #expect(try await Self.listOffset(h, "t", timestamp: 1_500, isolation: 1) == -1)
        #expect(try await Self.listOffset(h, "t", timestamp: -3, isolation: 1) == -1)
        #expect(try await Self.listOffset(h, "t", timestamp: 500, isolation: 1) == 0, "below the LSO it answers")
        #expect(try await Self.listOffset(h, "t", timestamp: 1_500, isolation: 0) == 1)
        #expect(try await Self.listOffset(h, "t", timestamp: -3, isolation: 0) == 1)
        #expect(try await tx.end(commit: true) == 0)
        #expect(try await Self.listOffset(h, "t", timestamp: 1_500, isolation: 1) == 1)
    }

    @Test("a plain batch from a producer with an open transaction is INVALID_TXN_STATE")
    func plainBatchInsideTransaction() async throws {
        let h = H()
        try h.storage.createTopic(name: "t", partitions: 1, configs: [:])
        var tx = Txn(h: h, id: "app")
        _ = try await tx.initialize()
        #expect(try await tx.addPartitions("t", [0]) == [0])
        #expect(try await tx.produce("t", ["in-txn"]).errorCode == 0)
        let plain = H.idempotentBatch(["outside"], producerId: tx.producerId, epoch: tx.epoch, sequence: 1, transactional: false)
        #expect(try await h.produce(topic: "t", records: plain)?.errorCode == ErrorCode.invalidTxnState.rawValue)
        #expect(h.storage.partition(topic: "t", partition: 0)?.logEndOffset == 1, "nothing was stored")
    }

    @Test("AddPartitionsToTxn v4 verify-only checks the transactional id, not only the producer id")
    func verifyOnlyChecksTheTransactionalId() async throws {
        let h = H()
        try h.storage.createTopic(name: "t", partitions: 1, configs: [:])
        var tx = Txn(h: h, id: "app")
        _ = try await tx.initialize()
        #expect(try await tx.addPartitions("t", [0]) == [0])
        func verify(_ id: String) async throws -> Int16 {
            var topic = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic()
            topic.name = "t"
            topic.partitions = [0]
            var txn = AddPartitionsToTxnRequest.AddPartitionsToTxnTransaction()
            txn.transactionalId = id
            txn.producerId = tx.producerId
            txn.producerEpoch = tx.epoch
            txn.verifyOnly = true
            txn.topics = [topic]
            var req = AddPartitionsToTxnRequest()
            req.transactions = [txn]
            let response = try #require(try await h.send(req, version: 4))
            return response.resultsByTransaction[0].topicResults[0].resultsByPartition[0].partitionErrorCode
        }
        #expect(try await verify("app") == 0)
        #expect(try await verify("someone-else") == ErrorCode.invalidProducerIdMapping.rawValue)
    }

    @Test("ListTransactions' duration filter covers every state but Dead; a finished transaction keeps its start time")
    func listAndDescribeFinishedTransactions() async throws {
        let h = H()
        try h.storage.createTopic(name: "t", partitions: 1, configs: [:])
        var tx = Txn(h: h, id: "app")
        _ = try await tx.initialize()
        var idle = Txn(h: h, id: "idle")
        _ = try await idle.initialize()
        #expect(try await tx.addPartitions("t", [0]) == [0])
        #expect(try await tx.end(commit: false) == 0)
        var list = ListTransactionsRequest()
        list.durationFilter = 0
        let listed = try #require(try await h.send(list, version: 1)).transactionStates.map(\.transactionalId)
        #expect(listed.contains("idle"), "an Empty id's transaction began before any duration")
        var describe = DescribeTransactionsRequest()
        describe.transactionalIds = ["app"]
        let state = try #require(try await h.send(describe, version: 0)).transactionStates[0]
        #expect(state.transactionState == "CompleteAbort")
        #expect(state.transactionStartTimeMs > 0)
    }
}
