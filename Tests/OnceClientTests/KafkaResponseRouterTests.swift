import NIOCore
import NIOEmbedded
import Testing

@testable import OnceClient

@Suite struct KafkaResponseRouterTests {
    private func makeChannel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder()))
        try channel.pipeline.syncOperations.addHandler(KafkaResponseRouter(endpoint: "broker:9092"))
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9092)).wait()
        #expect(channel.isActive)
        return channel
    }

    private func request(
        _ id: Int32, on channel: EmbeddedChannel, timeout: TimeAmount = .seconds(30)
    ) throws -> EventLoopFuture<ByteBuffer> {
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        var frame = ByteBuffer()
        frame.writeInteger(Int32(8), endianness: .big)
        frame.writeInteger(Int16(3), endianness: .big)
        frame.writeInteger(Int16(0), endianness: .big)
        frame.writeInteger(id, endianness: .big)
        try channel.writeOutbound(
            OutboundKafkaRequest(correlationId: id, apiKey: 3, frame: frame, response: promise, timeout: timeout))
        return promise.futureResult
    }

    private func response(_ id: Int32, body: [UInt8]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeInteger(Int32(4 + body.count), endianness: .big)
        buffer.writeInteger(id, endianness: .big)
        buffer.writeBytes(body)
        return buffer
    }

    @Test func deliversPipelinedResponsesToTheirRequests() async throws {
        let channel = try makeChannel()
        let first = try request(1, on: channel)
        let second = try request(2, on: channel)
        // Both requests reached the wire before either answer.
        #expect(try channel.readOutbound(as: ByteBuffer.self) != nil)
        #expect(try channel.readOutbound(as: ByteBuffer.self) != nil)

        var both = response(1, body: [0xA1])
        var tail = response(2, body: [0xB2, 0xB3])
        both.writeBuffer(&tail)
        try channel.writeInbound(both)

        var a = try await first.get()
        var b = try await second.get()
        #expect(a.readInteger(endianness: .big, as: Int32.self) == 1)
        #expect(Array(a.readableBytesView) == [0xA1])
        #expect(b.readInteger(endianness: .big, as: Int32.self) == 2)
        #expect(Array(b.readableBytesView) == [0xB2, 0xB3])
        _ = try channel.finish()
    }

    @Test func anOutOfOrderResponseFailsEverythingAndCloses() async throws {
        let channel = try makeChannel()
        let first = try request(1, on: channel)
        let second = try request(2, on: channel)
        try channel.writeInbound(response(2, body: []))
        await #expect(throws: KafkaClientError.self) { try await first.get() }
        await #expect(throws: KafkaClientError.self) { try await second.get() }
        #expect(!channel.isActive)
    }

    @Test func aTimedOutRequestFailsAndClosesTheConnection() async throws {
        let channel = try makeChannel()
        let pending = try request(1, on: channel, timeout: .seconds(5))
        channel.embeddedEventLoop.advanceTime(by: .seconds(4))
        #expect(channel.isActive)
        channel.embeddedEventLoop.advanceTime(by: .seconds(2))
        do {
            _ = try await pending.get()
            Issue.record("the request should have timed out")
        } catch let error as KafkaClientError {
            #expect(error.kind == .requestTimedOut)
            #expect(error.description.contains("broker:9092"))
        }
        #expect(!channel.isActive)
    }

    @Test func closingTheConnectionFailsOutstandingRequests() async throws {
        let channel = try makeChannel()
        let pending = try request(1, on: channel)
        try await channel.close()
        do {
            _ = try await pending.get()
            Issue.record("the request should have failed")
        } catch let error as KafkaClientError {
            #expect(error.kind == .connectionClosed)
        }
    }

    @Test func requestsAfterAFailureFailImmediately() async throws {
        let channel = try makeChannel()
        let first = try request(1, on: channel)
        try channel.writeInbound(response(7, body: []))
        await #expect(throws: KafkaClientError.self) { try await first.get() }
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        channel.pipeline.writeAndFlush(
            OutboundKafkaRequest(correlationId: 2, apiKey: 3, frame: ByteBuffer(), response: promise, timeout: .seconds(1)),
            promise: nil)
        await #expect(throws: (any Error).self) { try await promise.futureResult.get() }
    }
}
