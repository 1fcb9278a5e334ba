import KafkaProtocol
import NIOCore
import NIOEmbedded
import OnceClient
import Testing

@Suite struct KafkaFrameDecoderTests {
    private func frame(_ payload: [UInt8]) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeInteger(Int32(payload.count), endianness: .big)
        buffer.writeBytes(payload)
        return Array(buffer.readableBytesView)
    }

    @Test func reassemblesFramesFedOneByteAtATime() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(KafkaFrameDecoder()))
        let first: [UInt8] = [0, 0, 0, 1, 0xAA]
        let second: [UInt8] = [0, 0, 0, 2, 0xBB, 0xCC, 0xDD]
        for byte in frame(first) + frame(second) {
            try channel.writeInbound(ByteBuffer(bytes: [byte]))
        }
        let out1 = try #require(try channel.readInbound(as: ByteBuffer.self))
        let out2 = try #require(try channel.readInbound(as: ByteBuffer.self))
        #expect(Array(out1.readableBytesView) == first)
        #expect(Array(out2.readableBytesView) == second)
        #expect(try channel.readInbound(as: ByteBuffer.self) == nil)
        _ = try channel.finish()
    }

    @Test func splitsSeveralFramesArrivingTogether() throws {
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(KafkaFrameDecoder()))
        let frames = (0..<5).map { i in [UInt8](repeating: UInt8(i), count: 4 + i) }
        try channel.writeInbound(ByteBuffer(bytes: frames.flatMap(frame)))
        for expected in frames {
            let out = try #require(try channel.readInbound(as: ByteBuffer.self))
            #expect(Array(out.readableBytesView) == expected)
        }
        _ = try channel.finish()
    }

    @Test func refusesAFrameAboveTheLimitBeforeBufferingIt() throws {
        var decoder = KafkaFrameDecoder(maxFrameSize: 1024)
        var buffer = ByteBuffer()
        buffer.writeInteger(Int32(1025), endianness: .big)
        #expect(throws: KafkaProtocolError.self) { try decoder.decode(buffer: &buffer) }
    }

    @Test func refusesAFrameTooShortForACorrelationId() throws {
        var decoder = KafkaFrameDecoder()
        var buffer = ByteBuffer(bytes: [0, 0, 0, 2, 1, 2])
        #expect(throws: KafkaProtocolError.self) { try decoder.decode(buffer: &buffer) }
    }

    @Test func waitsForTheRestOfAFrame() throws {
        var decoder = KafkaFrameDecoder()
        var buffer = ByteBuffer(bytes: [0, 0, 0, 8, 0, 0, 0, 1])
        #expect(try decoder.decode(buffer: &buffer) == nil)
        #expect(buffer.readableBytes == 8)
    }
}
