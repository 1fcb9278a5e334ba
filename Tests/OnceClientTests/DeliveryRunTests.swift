import Synchronization
import Testing

@testable import OnceClient

@Suite struct DeliveryRunTests {
    private typealias Run = KafkaProducer.DeliveryRun

    /// Groups deliveries into runs the way a batch does.
    private func runs(_ deliveries: [KafkaProducer.Delivery]) -> [Run] {
        var runs: [Run] = []
        for delivery in deliveries {
            if runs.isEmpty || !runs[runs.count - 1].absorb(delivery) {
                runs.append(Run(first: delivery, count: 1))
            }
        }
        return runs
    }

    @Test func consecutiveRecordsOfOneBulkCallShareARun() {
        let handler: KafkaProducer.IndexedDeliveryHandler = { _, _ in }
        let grouped = runs((0..<500).map { .indexed(handler, call: 1, index: $0) })
        #expect(grouped.map(\.count) == [500])
    }

    @Test func anotherCallAGapOrASingleRecordStartsANewRun() {
        let handler: KafkaProducer.IndexedDeliveryHandler = { _, _ in }
        let grouped = runs([
            .indexed(handler, call: 1, index: 0), .indexed(handler, call: 1, index: 1),
            .indexed(handler, call: 2, index: 0), .indexed(handler, call: 2, index: 2),
            .single({ _ in }), .single({ _ in }), .indexed(handler, call: 2, index: 3),
        ])
        #expect(grouped.map(\.count) == [2, 1, 1, 1, 1, 1])
    }

    @Test func eachRecordReachesItsHandlerWithItsIndexAndItsOwnResult() {
        let seen = Mutex<[String]>([])
        let bulk: KafkaProducer.IndexedDeliveryHandler = { index, result in
            let offset = (try? result.get())?.offset ?? -1
            seen.withLock { $0.append("bulk[\(index)]@\(offset)") }
        }
        let single: KafkaProducer.DeliveryHandler = { result in
            let offset = (try? result.get())?.offset ?? -1
            seen.withLock { $0.append("single@\(offset)") }
        }
        let grouped = runs([
            .indexed(bulk, call: 7, index: 254), .indexed(bulk, call: 7, index: 255), .single(single),
            .indexed(bulk, call: 8, index: 0),
        ])
        var record = 0
        for run in grouped {
            run.deliver(startingAt: record) { i in
                .success(RecordMetadata(topicPartition: TopicPartition("t", 0), offset: 100 + Int64(i), timestamp: 0))
            }
            record += run.count
        }
        #expect(seen.withLock { $0 } == ["bulk[254]@100", "bulk[255]@101", "single@102", "bulk[0]@103"])
    }
}
