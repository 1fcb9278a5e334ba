import KafkaProtocol
@testable import OnceBroker
import OnceCore
import OnceStorage
import Testing

/// What the concurrent simulator found: Produce v12 requests pipelined on one connection each wait
/// for the coordinator's KIP-890 verification task, and when the later one's task finished first
/// its batch reached the log first and was refused OUT_OF_ORDER_SEQUENCE_NUMBER. Each seed is one
/// interleaving of the same three requests on the seeded scheduler.
@Suite("Pipelined Produce v12 on one connection")
struct PipelinedProduceTests {
    @Test("batches of one transaction pipelined on one connection are appended in request order", arguments: 1...40)
    func appendedInRequestOrder(seed: UInt64) async throws {
        let world = try SimulatedWorld(seed: seed, flushPolicy: .none, topics: ["out": 1])
        var initialize = InitProducerIdRequest()
        initialize.transactionalId = "pipelined"
        initialize.transactionTimeoutMs = 10_000
        let producer = try #require(
            await world.deliver(world.frame(initialize, version: 4), on: "producer", as: InitProducerIdResponse.self))
        try #require(producer.errorCode == 0)
        var sequence: Int32 = 0
        var requests: [SimulatedWorld.InFlight] = []
        for batch in 0..<3 {
            let records = (0..<2).map { Record(offsetDelta: Int32($0), key: nil, value: Array("\(batch)/\($0)".utf8)) }
            let encoded = RecordBatch.encode(
                records: records, baseTimestamp: world.clock.now, producerId: producer.producerId,
                producerEpoch: producer.producerEpoch, baseSequence: sequence, isTransactional: true)
            var produce = BrokerSimulation.produceRequest(partition: 0, batch: encoded)
            produce.topicData[0].name = "out"
            produce.transactionalId = "pipelined"
            requests.append(world.submit(world.frame(produce, version: 12), on: "producer"))
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
}
