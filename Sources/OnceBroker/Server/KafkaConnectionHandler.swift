import Logging
import NIOCore

/// One client connection: splits the byte stream into frames, hands each to the broker as it
/// arrives (pipelining) and writes the responses strictly in request order, as Kafka clients
/// require. A bad frame closes only this connection, with one log line.
///
/// It also enforces the connection's share of the broker's limits: it stops reading when too many
/// responses are outstanding or the shared request-bytes budget is spent (so neither a pipelining
/// client nor many half-sent requests can grow memory without bound), closes the connection when a
/// started request does not finish within the read timeout (slow senders), and closes it when the
/// idle handler in front of it reports no traffic while nothing is in flight.
final class KafkaConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = IOData

    struct Limits {
        var maxFrameSize: Int
        var budget: RequestBytesBudget
        var requestReadTimeout: TimeAmount
    }

    private let broker: Broker
    private let listener: Listener
    private var session: ConnectionSession
    private var logger: Logger
    private var decoder: KafkaFrameDecoder
    private let budget: RequestBytesBudget
    private let requestReadTimeout: TimeAmount
    /// Bytes read but not yet split into frames: at most one partial frame's worth plus one read.
    private var inbound: ByteBuffer?
    /// Bytes charged to the budget and not yet given back (partial frames and unanswered requests).
    private var charged = 0
    private var nextSequence = 0
    private var nextToWrite = 0
    /// Finished responses waiting for earlier ones; nil marks a request that has no response.
    private var finished: [Int: OutboundResponse?] = [:]
    /// Frame bytes of each request until its response is written, to give back to the budget.
    private var requestBytes: [Int: Int] = [:]
    private var readPending = false
    private var waitingForBudget = false
    private var unfinishedRequestTimer: Scheduled<Void>?
    private var closed = false
    private static let maxOutstanding = 64

    init(broker: Broker, listener: Listener, limits: Limits, logger: Logger) {
        self.broker = broker
        self.listener = listener
        self.session = ConnectionSession(listenerName: listener.name, securityProtocol: listener.securityProtocol, peerHost: "?")
        self.logger = logger
        self.decoder = KafkaFrameDecoder(maxFrameSize: limits.maxFrameSize)
        self.budget = limits.budget
        self.requestReadTimeout = limits.requestReadTimeout
    }

    func channelActive(context: ChannelHandlerContext) {
        logger[metadataKey: "peer"] = "\(context.remoteAddress.map { "\($0)" } ?? "?")"
        session = ConnectionSession(
            listenerName: listener.name, securityProtocol: listener.securityProtocol,
            peerHost: context.remoteAddress?.ipAddress ?? "?")
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        unfinishedRequestTimer?.cancel()
        inbound = nil
        budget.release(charged)
        charged = 0
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !closed else { return }
        var bytes = unwrapInboundIn(data)
        budget.charge(bytes.readableBytes)
        charged += bytes.readableBytes
        if inbound == nil {
            inbound = bytes
        } else {
            inbound!.writeBuffer(&bytes)
        }
        var framed = false
        while !closed, var buffer = inbound {
            inbound = nil
            let frame: ByteBuffer?
            do {
                frame = try decoder.decode(buffer: &buffer)
            } catch {
                closeConnection(context: context, reason: "\(error)")
                return
            }
            inbound = buffer.readableBytes > 0 ? buffer : nil
            guard let frame else { break }
            framed = true
            handle(frame, context: context)
        }
        if inbound != nil && inbound!.readerIndex > 64 * 1024 { inbound!.discardReadBytes() }
        armUnfinishedRequestTimer(context: context, progressed: framed)
    }

    private func handle(_ frame: ByteBuffer, context: ChannelHandlerContext) {
        let sequence = nextSequence
        nextSequence += 1
        requestBytes[sequence] = frame.readableBytes + 4
        let future: EventLoopFuture<OutboundResponse?>
        do {
            future = try broker.serve(frame: frame, eventLoop: context.eventLoop, session: session)
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

    /// A frame that has begun must finish within the read timeout, counted from its first byte or
    /// from the last frame that completed: a client trickling bytes is cut off, a busy pipeline is not.
    private func armUnfinishedRequestTimer(context: ChannelHandlerContext, progressed: Bool) {
        guard inbound != nil else {
            unfinishedRequestTimer?.cancel()
            unfinishedRequestTimer = nil
            return
        }
        guard unfinishedRequestTimer == nil || progressed else { return }
        unfinishedRequestTimer?.cancel()
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let timeout = requestReadTimeout
        unfinishedRequestTimer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = bound.value
            handler.unfinishedRequestTimer = nil
            guard let partial = handler.inbound?.readableBytes else { return }
            handler.closeConnection(
                context: context,
                reason: "request unfinished after \(timeout.nanoseconds / 1_000_000) ms (\(partial) bytes of it received)")
        }
    }

    private func writeReady(context: ChannelHandlerContext) {
        var wrote = false
        var done = 0
        while !closed, let response = finished.removeValue(forKey: nextToWrite) {
            done += requestBytes.removeValue(forKey: nextToWrite) ?? 0
            nextToWrite += 1
            if let response {
                for part in response.parts { write(part, context: context) }
                wrote = true
                if response.closesConnection {
                    closeAfterWrites(context: context, delay: response.closeDelay)
                    return
                }
            }
        }
        if wrote { context.flush() }
        if done > 0 && !closed {
            charged -= done
            budget.release(done)
        }
        resumeReadingIfAllowed(context: context)
    }

    /// A file range goes out as a FileRegion (sendfile) on the stored records' own descriptor,
    /// which the handle only borrows: it is given back, not closed, once the write is done, and the
    /// records value kept alive until then holds the descriptor open.
    private func write(_ part: OutboundResponse.Part, context: ChannelHandlerContext) {
        switch part {
        case .bytes(let buffer):
            context.write(wrapOutboundOut(.byteBuffer(buffer)), promise: nil)
        case .file(let records) where listener.securityProtocol.usesTLS:
            // Bytes the kernel sends straight from the file would bypass encryption.
            do {
                context.write(wrapOutboundOut(.byteBuffer(try records.read())), promise: nil)
            } catch {
                closeConnection(context: context, reason: "reading stored records failed: \(error)")
            }
        case .file(let records):
            let handle = NIOFileHandle(_deprecatedTakingOwnershipOfDescriptor: records.descriptor)
            let region = FileRegion(
                fileHandle: handle, readerIndex: records.position, endIndex: records.position + records.length)
            let promise = context.eventLoop.makePromise(of: Void.self)
            promise.futureResult.whenComplete { _ in
                withExtendedLifetime(records) { _ = try? handle.takeDescriptorOwnership() }
            }
            context.write(wrapOutboundOut(.fileRegion(region)), promise: promise)
        }
    }

    private func resumeReadingIfAllowed(context: ChannelHandlerContext) {
        guard readPending, !closed, nextSequence - nextToWrite < Self.maxOutstanding else { return }
        guard budget.hasRoom else {
            waitForBudget(context: context)
            return
        }
        readPending = false
        context.read()
    }

    private func waitForBudget(context: ChannelHandlerContext) {
        guard !waitingForBudget else { return }
        waitingForBudget = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        budget.whenRoom {
            eventLoop.execute {
                let (handler, context) = bound.value
                handler.waitingForBudget = false
                handler.resumeReadingIfAllowed(context: context)
            }
        }
    }

    func read(context: ChannelHandlerContext) {
        readPending = true
        resumeReadingIfAllowed(context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let identified = event as? TLSHandshakeHandler.PeerIdentified {
            session.authenticate(as: identified.principal)
            return
        }
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .all {
            // A long-polling fetch or a parked produce is not idleness.
            if nextSequence == nextToWrite && inbound == nil {
                closeConnection(context: context, reason: "idle (connections.max.idle.ms)", level: .info)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        closeConnection(context: context, reason: "\(error)")
    }

    /// Closes once everything written so far has gone out (an empty write completes after the
    /// writes before it), and `delay` after that; nothing more is read or answered meanwhile.
    private func closeAfterWrites(context: ChannelHandlerContext, delay: TimeAmount) {
        guard !closed else { return }
        closed = true
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.byteBuffer(context.channel.allocator.buffer(capacity: 0))), promise: done)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        done.futureResult.whenComplete { _ in
            guard delay > .zero else { return bound.value.close(promise: nil) }
            bound.value.eventLoop.scheduleTask(in: delay) { bound.value.close(promise: nil) }
        }
    }

    private func closeConnection(context: ChannelHandlerContext, reason: String, level: Logger.Level = .warning) {
        guard !closed else { return }
        closed = true
        logger.log(level: level, "closing connection", metadata: ["reason": "\(reason)"])
        context.close(promise: nil)
    }
}
