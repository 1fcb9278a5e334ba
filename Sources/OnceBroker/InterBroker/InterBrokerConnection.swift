import KafkaProtocol
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// Why a request to another broker got no answer. Callers treat every case as retriable: the
/// marker or verification is asked again, after the cluster view may have changed.
struct InterBrokerError: Error, CustomStringConvertible {
    enum Kind: Sendable { case noEndpoint, connectFailed, backingOff, timedOut, closed, outOfStep }
    var kind: Kind
    var description: String
}

/// One TCP connection from this broker to another, TLS on an SSL or SASL_SSL listener, requests
/// pipelined on it.
///
/// A request that outlives its timeout fails every request on the connection and closes it: Kafka
/// has no way to cancel a request in flight, and a late answer would otherwise be taken for the
/// next one.
final class InterBrokerConnection: Sendable {
    let endpoint: String
    private let channel: any Channel
    private let frames: Mutex<InterBrokerFrames>
    private let requestTimeout: TimeAmount

    private init(endpoint: String, channel: any Channel, clientId: String, requestTimeout: TimeAmount) {
        self.endpoint = endpoint
        self.channel = channel
        self.frames = Mutex(InterBrokerFrames(clientId: clientId))
        self.requestTimeout = requestTimeout
    }

    static func connect(
        host: String, port: Int, clientId: String, requestTimeout: TimeAmount, maxFrameSize: Int,
        tls: InterBrokerTLS? = nil, sasl: InterBrokerSasl? = nil, group: any EventLoopGroup
    ) async throws -> InterBrokerConnection {
        let endpoint = "\(host):\(port)"
        let channel: any Channel
        let handshake = group.next().makePromise(of: Void.self)
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(requestTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if let tls {
                            try channel.pipeline.syncOperations.addHandler(
                                NIOSSLClientHandler(context: tls.context, serverHostname: InterBrokerTLS.hostname(connectingTo: host)))
                            try channel.pipeline.syncOperations.addHandler(
                                InterBrokerHandshakeWaiter(done: handshake, timeout: requestTimeout))
                        }
                        try channel.pipeline.syncOperations.addHandler(
                            ByteToMessageHandler(KafkaFrameDecoder(maxFrameSize: maxFrameSize)))
                        try channel.pipeline.syncOperations.addHandler(InterBrokerResponseHandler(endpoint: endpoint))
                    }
                }
                .connect(host: host, port: port).get()
        } catch {
            handshake.fail(error)
            throw InterBrokerError(kind: .connectFailed, description: "cannot connect to broker \(endpoint): \(error)")
        }
        if tls == nil {
            handshake.succeed()
        }
        do {
            try await handshake.futureResult.get()
        } catch {
            channel.close(promise: nil)
            throw InterBrokerError(kind: .connectFailed, description: "TLS handshake with broker \(endpoint) failed: \(error)")
        }
        let connection = InterBrokerConnection(
            endpoint: endpoint, channel: channel, clientId: clientId, requestTimeout: requestTimeout)
        guard let sasl else { return connection }
        do {
            try await sasl.authenticate(over: connection)
        } catch {
            connection.close()
            throw InterBrokerError(kind: .connectFailed, description: "cannot authenticate to broker \(endpoint): \(error)")
        }
        return connection
    }

    var isActive: Bool { channel.isActive }

    /// Sends `request` at `version` and decodes its answer.
    func send<R: KafkaRequest>(_ request: R, version: Int16) async throws -> R.Response {
        let promise = channel.eventLoop.makePromise(of: ByteBuffer.self)
        // Ids are taken and frames written under one lock so they reach the socket in id order,
        // the order the peer answers in.
        let written = channel.eventLoop.makePromise(of: Void.self)
        frames.withLock { frames in
            let (id, frame) = frames.encode(request, version: version, allocator: channel.allocator)
            channel.writeAndFlush(
                InterBrokerResponseHandler.Outbound(
                    correlationId: id, frame: frame, response: promise, timeout: requestTimeout),
                promise: written)
        }
        // A channel already closed has no handler left to fail the response; the failed write
        // does it (a response promise the handler completed first ignores this).
        let endpoint = self.endpoint
        written.futureResult.whenFailure { error in
            promise.fail(error as? InterBrokerError
                ?? InterBrokerError(kind: .closed, description: "connection to broker \(endpoint) closed: \(error)"))
        }
        let frame = try await promise.futureResult.get()
        return try InterBrokerFrames.decode(R.self, version: version, frame: frame)
    }

    /// Closes the socket; requests in flight fail. The future completes once it is closed.
    @discardableResult
    func close() -> EventLoopFuture<Void> {
        channel.close(promise: nil)
        return channel.closeFuture
    }
}

/// Pairs response frames with the requests waiting for them, in the order they were written.
final class InterBrokerResponseHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = Outbound
    typealias OutboundOut = ByteBuffer

    struct Outbound: Sendable {
        var correlationId: Int32
        var frame: ByteBuffer
        var response: EventLoopPromise<ByteBuffer>
        var timeout: TimeAmount
    }

    private struct Waiting {
        var promise: EventLoopPromise<ByteBuffer>
        var timeoutTask: Scheduled<Void>
    }

    private let endpoint: String
    private var inFlight = InterBrokerInFlight<Waiting>()
    /// Set once the connection can carry nothing more; later writes fail with it at once.
    private var failure: InterBrokerError?

    init(endpoint: String) {
        self.endpoint = endpoint
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let failure {
            request.response.fail(failure)
            promise?.fail(failure)
            return
        }
        let id = request.correlationId
        let timeout = request.timeout
        let task = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            self.fail(context: context, InterBrokerError(
                kind: .timedOut, description: "broker \(endpoint) did not answer correlation id \(id) within \(timeout)"))
        }
        inFlight.register(id, Waiting(promise: request.response, timeoutTask: task))
        context.write(wrapOutboundOut(request.frame), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let id = InterBrokerFrames.correlationId(of: frame) else {
            fail(context: context, InterBrokerError(kind: .outOfStep, description: "broker \(endpoint) sent a frame without a correlation id"))
            return
        }
        switch inFlight.complete(id) {
        case .matched(let waiting):
            waiting.timeoutTask.cancel()
            waiting.promise.succeed(frame)
        case .outOfStep(let expected):
            fail(context: context, InterBrokerError(
                kind: .outOfStep,
                description: "broker \(endpoint) answered correlation id \(id), expected \(expected.map(String.init) ?? "none")"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(InterBrokerError(kind: .closed, description: "connection to broker \(endpoint) closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(context: context, InterBrokerError(kind: .closed, description: "connection to broker \(endpoint) failed: \(error)"))
    }

    private func fail(context: ChannelHandlerContext, _ error: InterBrokerError) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: InterBrokerError) {
        if failure == nil { failure = error }
        for waiting in inFlight.removeAll() {
            waiting.timeoutTask.cancel()
            waiting.promise.fail(error)
        }
    }
}
