import KafkaProtocol
import NIOCore
@testable import OnceBroker
import OnceStorage
import Testing

/// A hanging transaction's ABORT marker (a partition whose marker a cut log tail lost) is an
/// acknowledged write like any other: under `--flush always` the request that wrote it, an
/// operator's WriteTxnMarkers or the AddPartitionsToTxn that found it, is answered only once the
/// marker is durable, and so fetchable.
@Suite("Hanging-transaction aborts under flush always")
struct HangingAbortDurabilityTests {
    /// Memory storage under `always` with one partition holding an open transaction of
    /// `producerId` that no coordinator knows of, synced as a lost marker leaves it.
    static func storageWithHangingTransaction(producerId: Int64) throws -> (MemoryLogStorage, any PartitionLog) {
        let storage = MemoryLogStorage(flushPolicy: .always)
        _ = try storage.createTopic(name: "out", partitions: 1, configs: [:])
        let log = try #require(storage.partition(topic: "out", partition: 0))
        try append(hangingBatchOf: producerId, to: log)
        return (storage, log)
    }

    static func append(hangingBatchOf producerId: Int64, to log: any PartitionLog) throws {
        _ = try log.append(RecordBatch.encode(
            records: [Record(offsetDelta: 0, key: nil, value: Array("v".utf8))], baseTimestamp: 1_700_000_000_000,
            producerId: producerId, producerEpoch: 0, isTransactional: true))
        try log.sync()
    }

    @Test("the operator's ABORT marker is durable when WriteTxnMarkers answers")
    func writeTxnMarkersWaitsForTheMarker() async throws {
        let (storage, log) = try Self.storageWithHangingTransaction(producerId: 4242)
        let h = BrokerHarness(storage: storage) { $0.flushPolicy = .always }
        var topic = WriteTxnMarkersRequest.WritableTxnMarkerTopic()
        topic.name = "out"
        topic.partitionIndexes = [0]
        var marker = WriteTxnMarkersRequest.WritableTxnMarker()
        marker.producerId = 4242
        marker.producerEpoch = 0
        marker.transactionResult = false
        marker.topics = [topic]
        var request = WriteTxnMarkersRequest()
        request.markers = [marker]
        let response = try #require(try await h.send(request, version: 1))
        #expect(response.markers[0].topics[0].partitions[0].errorCode == 0)
        #expect(log.logEndOffset == 2, "the marker was written")
        #expect(log.highWatermark == log.logEndOffset, "answered before the marker was durable")
    }

    @Test("the abort AddPartitionsToTxn writes for its producer's earlier open transaction is durable when it answers")
    func addPartitionsWaitsForTheAbort() async throws {
        let storage = MemoryLogStorage(flushPolicy: .always)
        _ = try storage.createTopic(name: "out", partitions: 1, configs: [:])
        let h = BrokerHarness(storage: storage) { $0.flushPolicy = .always }
        var initRequest = InitProducerIdRequest()
        initRequest.transactionalId = "app"
        initRequest.transactionTimeoutMs = 60_000
        initRequest.producerId = -1
        initRequest.producerEpoch = -1
        let producer = try #require(try await h.send(initRequest, version: 4))
        try #require(producer.errorCode == 0)
        // The producer's earlier transaction on the partition, whose marker was lost.
        let log = try #require(storage.partition(topic: "out", partition: 0))
        try Self.append(hangingBatchOf: producer.producerId, to: log)
        var t = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic()
        t.name = "out"
        t.partitions = [0]
        var add = AddPartitionsToTxnRequest()
        add.v3AndBelowTransactionalId = "app"
        add.v3AndBelowProducerId = producer.producerId
        add.v3AndBelowProducerEpoch = producer.producerEpoch
        add.v3AndBelowTopics = [t]
        let added = try #require(try await h.send(add, version: 3))
        #expect(added.resultsByTopicV3AndBelow[0].resultsByPartition[0].partitionErrorCode == 0)
        #expect(log.logEndOffset == 2, "the earlier transaction was aborted")
        #expect(log.highWatermark == log.logEndOffset, "answered before the abort marker was durable")
    }
}
