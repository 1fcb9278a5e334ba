import Logging
import NIOCore

/// One client connection: hands each frame to the broker as it arrives (pipelining) and writes the
/// responses strictly in request order, as Kafka clients require. A bad frame closes only this
/// connection, with one log line. When too many responses are outstanding it stops reading, so a
/// client that pipelines without bound cannot grow the broker's memory.
final class KafkaConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let broker: Broker
    private var logger: Logger
    private var nextSequence = 0
    private var nextToWrite = 0
    /// Finished responses waiting for earlier ones; nil marks a request that has no response.
    private var finished: [Int: ByteBuffer?] = [:]
    private var readPending = false
    private var closed = false
    private static let maxOutstanding = 64

    init(broker: Broker, logger: Logger) {
        self.broker = broker
        self.logger = logger
    }

    func channelActive(context: ChannelHandlerContext) {
        logger[metadataKey: "peer"] = "\(context.remoteAddress.map { "\($0)" } ?? "?")"
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        let frame = unwrapInboundIn(data)
        let sequence = nextSequence
        nextSequence += 1
        let future: EventLoopFuture<ByteBuffer?>
        do {
            future = try broker.handle(frame: frame, eventLoop: context.eventLoop)
        } catch {
            closeConnection(context: context, reason: "\(error)")
            return
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        future.hop(to: context.eventLoop).whenComplete { result in
            let (handler, context) = bound.value
            switch result {
            case .success(let response):
                handler.finished[sequence] = .some(response)
                handler.writeReady(context: context)
            case .failure(let error):
                handler.closeConnection(context: context, reason: "request failed: \(error)")
            }
        }
    }

    private func writeReady(context: ChannelHandlerContext) {
        var wrote = false
        while !closed, let response = finished.removeValue(forKey: nextToWrite) {
            nextToWrite += 1
            if let response {
                context.write(wrapOutboundOut(response), promise: nil)
                wrote = true
            }
        }
        if wrote { context.flush() }
        if readPending && nextSequence - nextToWrite < Self.maxOutstanding {
            readPending = false
            context.read()
        }
    }

    func read(context: ChannelHandlerContext) {
        if nextSequence - nextToWrite >= Self.maxOutstanding {
            readPending = true
        } else {
            context.read()
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        closeConnection(context: context, reason: "\(error)")
    }

    private func closeConnection(context: ChannelHandlerContext, reason: String) {
        guard !closed else { return }
        closed = true
        logger.warning("closing connection", metadata: ["reason": "\(reason)"])
        context.close(promise: nil)
    }
}
