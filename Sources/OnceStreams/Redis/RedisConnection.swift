import NIOCore
import NIOPosix

/// Why a Redis command failed.
public struct RedisError: Error, Hashable, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One connection to a Redis server: commands are pipelined and answered in order. Just what the
/// dedup store needs (no pub/sub, no cluster redirects).
public final class RedisConnection: Sendable {
    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    public static func connect(host: String, port: Int) async throws -> RedisConnection {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(RESPReplyDecoder()))
                    try channel.pipeline.syncOperations.addHandler(RESPCommandHandler())
                }
            }
            .connect(host: host, port: port).get()
        return RedisConnection(channel: channel)
    }

    /// Sends one command and waits for its reply. A Redis error reply is returned, not thrown,
    /// so callers that expect one (e.g. NOSCRIPT) can look at it.
    public func send(_ arguments: [String]) async throws -> RESPValue {
        var buffer = channel.allocator.buffer(capacity: 64)
        RESPCodec.encodeCommand(arguments, into: &buffer)
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        channel.writeAndFlush(RESPCommandHandler.OutboundIn(bytes: buffer, reply: promise), promise: nil)
        return try await promise.futureResult.get()
    }

    /// Like `send`, but a Redis error reply throws.
    @discardableResult
    public func command(_ arguments: String...) async throws -> RESPValue {
        let reply = try await send(arguments)
        if case .error(let message) = reply { throw RedisError(message) }
        return reply
    }

    public func close() async {
        try? await channel.close()
    }
}

struct RESPReplyDecoder: ByteToMessageDecoder {
    typealias InboundOut = RESPValue

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let value = try RESPCodec.decode(&buffer) else { return .needMoreData }
        context.fireChannelRead(Self.wrapInboundOut(value))
        return .continue
    }
}

/// Pairs each reply with the command that asked for it: Redis answers strictly in order.
final class RESPCommandHandler: ChannelDuplexHandler {
    typealias InboundIn = RESPValue
    struct OutboundIn {
        var bytes: ByteBuffer
        var reply: EventLoopPromise<RESPValue>
    }
    typealias OutboundOut = ByteBuffer

    private var waiting = CircularBuffer<EventLoopPromise<RESPValue>>()

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let command = unwrapOutboundIn(data)
        waiting.append(command.reply)
        context.write(wrapOutboundOut(command.bytes), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let value = unwrapInboundIn(data)
        guard let promise = waiting.popFirst() else { return }
        promise.succeed(value)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisError("connection closed"))
        context.fireChannelInactive()
    }

    private func failAll(_ error: any Error) {
        while let promise = waiting.popFirst() { promise.fail(error) }
    }
}
