import Foundation
import OnceClient
import Testing

// Only OnceClient is imported above (plus Foundation for Data): RecordHeader, CompressionCodec,
// ErrorCode and ByteBuffer must be reachable from it alone.
@Suite struct KafkaPayloadTests {
    @Test func everyPayloadTypeGivesTheSameBytes() {
        let expected = Array("héllo".utf8)
        var buffer = ByteBuffer()
        buffer.writeBytes([0xFF] + expected)
        buffer.moveReaderIndex(forwardBy: 1)
        #expect(expected.kafkaBytes == expected)
        #expect("héllo".kafkaBytes == expected)
        #expect("xhéllo".dropFirst().kafkaBytes == expected)
        #expect(buffer.kafkaBytes == expected, "a ByteBuffer gives its readable bytes only")
        #expect(Data(expected).kafkaBytes == expected)
        #expect(([0] + expected)[1...].kafkaBytes == expected)
    }

    @Test func anArrayIsTakenWithoutACopy() {
        let value = [UInt8](repeating: 7, count: 4096)
        let message = ProducerMessage(topic: "t", value: value)
        let same = value.withUnsafeBufferPointer { original in
            message.value!.withUnsafeBufferPointer { stored in original.baseAddress == stored.baseAddress }
        }
        #expect(same)
    }

    @Test func messagesAndHeadersAcceptAnyPayload() {
        var buffer = ByteBuffer()
        buffer.writeString("v")
        let fromBuffer = ProducerMessage(topic: "t", key: Data("k".utf8), value: buffer)
        let fromStrings = ProducerMessage(topic: "t", key: "k", value: "v")
        #expect(fromBuffer == fromStrings)
        let unkeyed = ProducerMessage(topic: "t", partition: 2, value: Data("v".utf8))
        #expect(unkeyed.key == nil && unkeyed.partition == 2 && unkeyed.value == Array("v".utf8))
        let noKey: String? = nil
        #expect(ProducerMessage(topic: "t", key: noKey, value: buffer).key == nil)
        #expect(RecordHeader(key: "h", value: Data([1, 2])) == RecordHeader(key: "h", value: [1, 2]))
    }

    @Test func protocolTypesAreReachableFromOnceClient() {
        var configuration = ProducerConfiguration(bootstrapServers: [])
        configuration.compression = CompressionCodec.zstd
        #expect(configuration.compression == .zstd)
        #expect(KafkaError(.unknownTopicOrPartition).code == ErrorCode.unknownTopicOrPartition)
    }
}
