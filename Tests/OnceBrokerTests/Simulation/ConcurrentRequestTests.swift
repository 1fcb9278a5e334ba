import KafkaProtocol
import NIOCore
@testable import OnceBroker
import OnceCore
import OnceStorage
import Testing

/// Requests in flight together on the seeded scheduler, each seed one interleaving of the same
/// requests: the races issue 10 names, pinned down one at a time.
@Suite("Concurrent requests on the seeded scheduler")
struct ConcurrentRequestTests {
    static let topic = "out"

    /// What the concurrent simulator found: Produce v12 requests pipelined on one connection each
    /// wait for the coordinator's KIP-890 verification task, and when the later one's task
    /// finished first its batch reached the log first and was refused OUT_OF_ORDER_SEQUENCE_NUMBER.
    @Test("batches of one transaction pipelined on one connection are appended in request order", arguments: 1...40)
    func pipelinedInRequestOrder(seed: UInt64) async throws {
        let world = try SimulatedWorld(seed: seed, flushPolicy: .none, topics: [Self.topic: 1])
        let producer = try await Self.initProducer(world, "pipelined")
        var sequence: Int32 = 0
        var requests: [SimulatedWorld.InFlight] = []
        for batch in 0..<3 {
            requests.append(world.submit(
                Self.produce(world, producer, "pipelined", v2: true, sequence: sequence, values: ["\(batch)/0", "\(batch)/1"]),
                on: "producer"))
            sequence += 2
        }
        var offsets: [Int64] = []
        for request in requests {
            let answer = try #require(world.wait(request, as: ProduceResponse.self)).responses[0].partitionResponses[0]
            #expect(ErrorCode(answer.errorCode) == .none, "seed \(seed): \(ErrorCode(answer.errorCode))")
            offsets.append(answer.baseOffset)
        }
        #expect(offsets == [0, 2, 4], "seed \(seed)")
    }

    /// Issue 10 item 9: a batch that passed the KIP-890 verification must not land after its
    /// transaction's COMMIT marker, where it would open a transaction nobody ends. A Produce
    /// races the EndTxn of its own transaction on another connection (V1: AddPartitionsToTxn and
    /// Produce v9; V2: Produce v12 and EndTxn v5). Whichever wins, the batch is either inside the
    /// committed transaction or refused, and the partition's LSO reaches its high watermark; over
    /// the seeds both orders happen, or the race was never run.
    @Test("a Produce racing its transaction's EndTxn lands inside the transaction or is refused", arguments: [false, true])
    func produceRacingEndTxn(v2: Bool) async throws {
        var outcomes: [Bool: Int] = [:]
        for seed in UInt64(1)...40 {
            outcomes[try await Self.raceProduceWithEndTxn(v2: v2, seed: seed), default: 0] += 1
        }
        #expect(outcomes[true, default: 0] > 0 && outcomes[false, default: 0] > 0, "one order only: \(outcomes)")
    }

    /// One interleaving; true when the racing batch was appended (inside the transaction).
    static func raceProduceWithEndTxn(v2: Bool, seed: UInt64) async throws -> Bool {
        let world = try SimulatedWorld(seed: seed, flushPolicy: .none, topics: [Self.topic: 1])
        let id = "racing"
        let producer = try await initProducer(world, id)
        if !v2 {
            var t = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic()
            t.name = topic
            t.partitions = [0]
            var add = AddPartitionsToTxnRequest()
            add.v3AndBelowTransactionalId = id
            add.v3AndBelowProducerId = producer.producerId
            add.v3AndBelowProducerEpoch = producer.producerEpoch
            add.v3AndBelowTopics = [t]
            let added = try #require(await world.deliver(world.frame(add, version: 3), on: "producer", as: AddPartitionsToTxnResponse.self))
            try #require(added.resultsByTopicV3AndBelow[0].resultsByPartition[0].partitionErrorCode == 0)
        }
        let first = try #require(await world.deliver(
            produce(world, producer, id, v2: v2, sequence: 0, values: ["a"]), on: "producer", as: ProduceResponse.self))
        try #require(first.responses[0].partitionResponses[0].errorCode == 0)

        let racing = world.submit(produce(world, producer, id, v2: v2, sequence: 1, values: ["b"]), on: "producer")
        var end = EndTxnRequest()
        end.transactionalId = id
        end.producerId = producer.producerId
        end.producerEpoch = producer.producerEpoch
        end.committed = true
        let ending = world.submit(world.frame(end, version: v2 ? 5 : 3), on: "coordinator")
        let produced = try #require(world.wait(racing, as: ProduceResponse.self)).responses[0].partitionResponses[0]
        let ended = try #require(world.wait(ending, as: EndTxnResponse.self))
        #expect(ended.errorCode == 0, "seed \(seed): EndTxn \(ErrorCode(ended.errorCode))")
        world.settle()

        let log = try #require(world.storage.partition(topic: topic, partition: 0))
        let batches = try RecordBatch.decodeAll(from: log.read(from: 0, maxBytes: 1 << 20, limitOffset: .max))
        let marker = try #require(batches.first { $0.header.isControl }, "seed \(seed): no marker")
        if produced.errorCode == 0 {
            #expect(produced.baseOffset < marker.header.baseOffset, "seed \(seed): the batch landed after the COMMIT marker")
        } else {
            #expect(batches.filter { !$0.header.isControl }.count == 1, "seed \(seed): a refused batch is in the log")
        }
        let stable = try world.broker.stableView(topic, 0, from: 0)
        #expect(stable.lastStableOffset == log.highWatermark, "seed \(seed): the LSO is held below the high watermark")
        return produced.errorCode == 0
    }

    static func initProducer(_ world: SimulatedWorld, _ id: String) async throws -> InitProducerIdResponse {
        var initialize = InitProducerIdRequest()
        initialize.transactionalId = id
        initialize.transactionTimeoutMs = 10_000
        let producer = try #require(
            await world.deliver(world.frame(initialize, version: 4), on: "producer", as: InitProducerIdResponse.self))
        try #require(producer.errorCode == 0)
        return producer
    }

    static func produce(
        _ world: SimulatedWorld, _ producer: InitProducerIdResponse, _ id: String, v2: Bool, sequence: Int32, values: [String]
    ) -> SimulatedWorld.Frame {
        let records = values.enumerated().map { Record(offsetDelta: Int32($0.offset), key: nil, value: Array($0.element.utf8)) }
        let batch = RecordBatch.encode(
            records: records, baseTimestamp: world.clock.now, producerId: producer.producerId,
            producerEpoch: producer.producerEpoch, baseSequence: sequence, isTransactional: true)
        var produce = BrokerSimulation.produceRequest(partition: 0, batch: batch)
        produce.topicData[0].name = topic
        if v2 { produce.transactionalId = id }
        return world.frame(produce, version: v2 ? 12 : 9)
    }
}
