import KafkaProtocol
import NIOCore
@testable import OnceBroker
import OnceStorage
import Testing

@Suite("Idempotent produce")
struct IdempotentProduceTests {
    typealias H = BrokerHarness

    @Test("InitProducerId hands out a new id at epoch 0 every time")
    func initProducerId() async throws {
        let h = H()
        var ids = Set<Int64>()
        for _ in 0..<5 {
            let r = try await h.initProducerId()
            #expect(r.errorCode == 0)
            #expect(r.producerEpoch == 0)
            ids.insert(r.producerId)
        }
        #expect(ids.count == 5)
    }

    @Test("producer ids stay unique across a restart")
    func idsSurviveRestart() async throws {
        let storage = MemoryLogStorage()
        let first = try await H(storage: storage).initProducerId().producerId
        let second = try await H(storage: storage).initProducerId().producerId
        #expect(first != second)
        #expect(second >= 1000, "a restarted broker resumes past the reserved block")
    }

    @Test("a retried batch gets its original offsets and is stored once")
    func retry() async throws {
        let h = H()
        let pid = try await h.initProducerId().producerId
        let a = H.idempotentBatch(["a", "b"], producerId: pid, sequence: 0)
        let b = H.idempotentBatch(["c"], producerId: pid, sequence: 2)
        #expect(try await h.produce(topic: "t", records: a)?.baseOffset == 0)
        #expect(try await h.produce(topic: "t", records: b)?.baseOffset == 2)
        let retryA = try #require(try await h.produce(topic: "t", records: a))
        #expect(retryA.errorCode == 0)
        #expect(retryA.baseOffset == 0)
        #expect(try await h.produce(topic: "t", records: b)?.baseOffset == 2)
        #expect(h.storage.partition(topic: "t", partition: 0)?.logEndOffset == 3)
    }

    @Test("a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER and a stale epoch INVALID_PRODUCER_EPOCH")
    func errors() async throws {
        let h = H()
        let pid = try await h.initProducerId().producerId
        _ = try await h.produce(topic: "t", records: H.idempotentBatch(["a"], producerId: pid, epoch: 1, sequence: 0))
        let gap = try await h.produce(topic: "t", records: H.idempotentBatch(["x"], producerId: pid, epoch: 1, sequence: 5))
        #expect(gap?.errorCode == ErrorCode.outOfOrderSequenceNumber.rawValue)
        let stale = try await h.produce(topic: "t", records: H.idempotentBatch(["x"], producerId: pid, epoch: 0, sequence: 1))
        #expect(stale?.errorCode == ErrorCode.invalidProducerEpoch.rawValue)
        // A transactional batch from a producer no transaction knows is refused before the table.
        let stray = try await h.produce(
            topic: "t", records: H.idempotentBatch(["x"], producerId: pid, epoch: 1, sequence: 1, transactional: true))
        #expect(stray?.errorCode == ErrorCode.invalidProducerIdMapping.rawValue)
        #expect(h.storage.partition(topic: "t", partition: 0)?.logEndOffset == 1)
    }

    @Test("after a restart, a retry is still recognised: from the log alone and from snapshot plus log")
    func restart() async throws {
        let storage = MemoryLogStorage()
        let h = H(storage: storage)
        let pid = try await h.initProducerId().producerId
        let batches = (0..<8).map { H.idempotentBatch(["v\($0)"], producerId: pid, sequence: Int32($0)) }
        for b in batches.prefix(4) { _ = try await h.produce(topic: "t", records: b) }
        // A restart with no snapshot replays the whole log.
        let replayed = H(storage: storage)
        #expect(try await replayed.produce(topic: "t", records: batches[3])?.baseOffset == 3)
        #expect(storage.partition(topic: "t", partition: 0)?.logEndOffset == 4)
        // Snapshot, write more, restart: snapshot plus the tail.
        replayed.broker.producers.snapshotAll()
        for b in batches[4...] { _ = try await replayed.produce(topic: "t", records: b) }
        let restarted = H(storage: storage)
        for i in 3..<8 {
            #expect(try await restarted.produce(topic: "t", records: batches[i])?.baseOffset == Int64(i))
        }
        #expect(storage.partition(topic: "t", partition: 0)?.logEndOffset == 8)
        let next = H.idempotentBatch(["v8"], producerId: pid, sequence: 8)
        #expect(try await restarted.produce(topic: "t", records: next)?.baseOffset == 8)
    }

    @Test("DescribeProducers lists the active producers of a partition")
    func describeProducers() async throws {
        let h = H()
        let p1 = try await h.initProducerId().producerId
        let p2 = try await h.initProducerId().producerId
        _ = try await h.produce(topic: "t", records: H.idempotentBatch(["a", "b"], producerId: p1, sequence: 0))
        _ = try await h.produce(topic: "t", records: H.idempotentBatch(["c"], producerId: p2, sequence: 0))
        var topic = DescribeProducersRequest.TopicRequest()
        topic.name = "t"
        topic.partitionIndexes = [0, 9]
        var req = DescribeProducersRequest()
        req.topics = [topic]
        let response = try #require(try await h.send(req, version: 0))
        let partition = response.topics[0].partitions[0]
        #expect(partition.activeProducers.map(\.producerId) == [p1, p2].sorted())
        #expect(partition.activeProducers.first { $0.producerId == p1 }?.lastSequence == 1)
        #expect(response.topics[0].partitions[1].errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
    }

    @Test("deleting a topic forgets its producers")
    func deleteForgets() async throws {
        let storage = MemoryLogStorage()
        let h = H(storage: storage)
        let pid = try await h.initProducerId().producerId
        let batch = H.idempotentBatch(["a"], producerId: pid, sequence: 0)
        _ = try await h.produce(topic: "t", records: batch)
        h.broker.producers.snapshotAll()
        let id = try #require(storage.topic(named: "t")).id
        #expect(try storage.readState(named: ProducerRegistry.snapshotName(id, 0)) != nil)
        var del = DeleteTopicsRequest()
        del.topicNames = ["t"]
        _ = try await h.send(del, version: 4)
        #expect(try storage.readState(named: ProducerRegistry.snapshotName(id, 0)) == nil)
        // The recreated topic starts empty, so the same batch is new data again.
        #expect(try await h.produce(topic: "t", records: batch)?.baseOffset == 0)
        #expect(storage.partition(topic: "t", partition: 0)?.logEndOffset == 1)
    }
}
