import KafkaProtocol
import OnceClient
import Testing

/// Without @testable: records must be buildable through the public API alone.
@Suite struct ConsumerRecordTests {
    @Test func aRecordCanBeBuiltByHand() {
        let record = ConsumerRecord(topicPartition: TopicPartition("orders", 3), offset: 42, value: Array("v".utf8))
        #expect(record.topicPartition == TopicPartition("orders", 3))
        #expect(record.offset == 42)
        #expect(record.timestamp == 0)
        #expect(record.key == nil)
        #expect(record.value == Array("v".utf8))
        #expect(record.headers.isEmpty)
    }

    @Test func everyFieldIsTakenAsGiven() {
        let header = RecordHeader(key: "event-id", value: Array("e-1".utf8))
        let record = ConsumerRecord(
            topicPartition: TopicPartition("t", 0), offset: 7, timestamp: 1_700_000_000_000, key: [1], value: nil,
            headers: [header])
        #expect(record.timestamp == 1_700_000_000_000)
        #expect(record.key == [1])
        #expect(record.value == nil)
        #expect(record.headers == [header])
    }
}
