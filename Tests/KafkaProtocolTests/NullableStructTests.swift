import KafkaProtocol
import NIOCore
import Testing

/// A nullable struct field is a one-byte presence marker (-1 null, 1 present) before the struct,
/// as Kafka's generated code writes it; ConsumerGroupHeartbeatResponse.Assignment is one.
@Suite struct NullableStructTests {
    @Test(arguments: ConsumerGroupHeartbeatResponse.validVersions)
    func nullAssignmentIsOneMarkerByte(version: Int16) throws {
        var response = ConsumerGroupHeartbeatResponse()
        response.memberId = "m"
        var withNull = ByteBuffer()
        response.encode(into: &withNull, version: version)

        var assignment = ConsumerGroupHeartbeatResponse.Assignment()
        var tp = ConsumerGroupHeartbeatResponse.TopicPartitions()
        tp.topicId = KafkaUUID(high: 1, low: 2)
        tp.partitions = [0, 3]
        assignment.topicPartitions = [tp]
        response.assignment = assignment
        var withValue = ByteBuffer()
        response.encode(into: &withValue, version: version)

        // Fields before the marker: throttle (4), error (2), null message (1), "m" (2), epoch (4), interval (4).
        let markerAt = 4 + 2 + 1 + 2 + 4 + 4
        #expect(withNull.getInteger(at: markerAt, as: Int8.self) == -1)
        #expect(withValue.getInteger(at: markerAt, as: Int8.self) == 1)

        var a = withNull
        #expect(try ConsumerGroupHeartbeatResponse(from: &a, version: version).assignment == nil)
        var b = withValue
        #expect(try ConsumerGroupHeartbeatResponse(from: &b, version: version) == response)
        #expect(a.readableBytes == 0 && b.readableBytes == 0)
    }
}
