import KafkaProtocol
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization

/// The framing layer of a connection: writes request headers and frames, hands back the body of
/// each matching response. It knows nothing about which versions to use.
final class KafkaTransport: Sendable {
    let host: String
    let port: Int
    let clientId: String
    let requestTimeout: TimeAmount
    private let channel: any Channel
    private let lastCorrelationId = Mutex<Int32>(0)

    var endpoint: String { "\(host):\(port)" }

    private init(host: String, port: Int, clientId: String, requestTimeout: TimeAmount, channel: any Channel) {
        self.host = host
        self.port = port
        self.clientId = clientId
        self.requestTimeout = requestTimeout
        self.channel = channel
    }

    static func connect(
        host: String, port: Int, configuration: KafkaClientConfiguration, group: any EventLoopGroup
    ) async throws -> KafkaTransport {
        let endpoint = "\(host):\(port)"
        let maxFrameSize = configuration.maxResponseSize
        let tlsContext = try configuration.tls?.context()
        let serverHostname = configuration.tls?.hostname(connectingTo: host)
        // Made before the channel exists so a failed connect can fail it too: no promise is left behind.
        let handshake = tlsContext.map { _ in group.next().makePromise(of: Void.self) }
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(TimeAmount(configuration.connectTimeout))
                .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        if let tlsContext {
                            try sync.addHandler(NIOSSLClientHandler(context: tlsContext, serverHostname: serverHostname))
                            try sync.addHandler(TLSHandshakeWaiter(done: handshake!))
                        }
                        try sync.addHandler(ByteToMessageHandler(KafkaFrameDecoder(maxFrameSize: maxFrameSize)))
                        try sync.addHandler(KafkaResponseRouter(endpoint: endpoint))
                    }
                }
                .connect(host: host, port: port)
                .get()
        } catch {
            handshake?.fail(error)
            throw KafkaClientError.cannotConnect(
                host: host, port: port, reason: KafkaClientError.connectFailureReason(error))
        }
        if let handshake {
            let timeout = channel.eventLoop.scheduleTask(in: TimeAmount(configuration.connectTimeout)) {
                channel.close(promise: nil)
            }
            do {
                try await handshake.futureResult.get()
                timeout.cancel()
            } catch {
                timeout.cancel()
                try? await channel.close()
                throw KafkaClientError.tlsHandshakeFailed(endpoint, error)
            }
        }
        return KafkaTransport(
            host: host, port: port, clientId: configuration.clientId,
            requestTimeout: TimeAmount(configuration.requestTimeout), channel: channel)
    }

    /// Sends one request and returns the response body, positioned after the response header.
    /// With `expectsResponse: false` it returns nil once the bytes are written.
    func roundTrip(
        apiKey: Int16, version: Int16, extraTimeout: TimeAmount = .zero, expectsResponse: Bool = true,
        encodeBody: (inout ByteBuffer) -> Void
    ) async throws -> ByteBuffer? {
        let pending = start(
            apiKey: apiKey, version: version, extraTimeout: extraTimeout, expectsResponse: expectsResponse,
            encodeBody: encodeBody)
        return try await pending.body()
    }

    /// Writes one request before returning, so requests started one after another from the same
    /// task or actor reach the socket in that order (the producer's in-flight batches rely on it).
    /// The response is awaited separately.
    func start(
        apiKey: Int16, version: Int16, extraTimeout: TimeAmount = .zero, expectsResponse: Bool = true,
        encodeBody: (inout ByteBuffer) -> Void
    ) -> PendingFrame {
        let correlationId = lastCorrelationId.withLock { id in
            id = id == Int32.max ? 1 : id + 1
            return id
        }
        var frame = channel.allocator.buffer(capacity: 256)
        frame.writeInteger(Int32(0), endianness: .big)
        var header = RequestHeader()
        header.requestApiKey = apiKey
        header.requestApiVersion = version
        header.correlationId = correlationId
        header.clientId = clientId
        header.encode(into: &frame, version: KafkaHeaderVersions.request(apiKey: apiKey, apiVersion: version))
        encodeBody(&frame)
        frame.setInteger(Int32(frame.readableBytes - 4), at: frame.readerIndex, endianness: .big)

        let promise = expectsResponse ? channel.eventLoop.makePromise(of: ByteBuffer.self) : nil
        let request = OutboundKafkaRequest(
            correlationId: correlationId, apiKey: apiKey, frame: frame, response: promise,
            timeout: requestTimeout + extraTimeout)
        let writePromise = channel.eventLoop.makePromise(of: Void.self)
        channel.writeAndFlush(request, promise: writePromise)
        let endpoint = self.endpoint
        if let promise {
            writePromise.futureResult.whenFailure { error in
                promise.fail(error is KafkaClientError ? error : KafkaClientError.connectionClosed(endpoint))
            }
        }
        return PendingFrame(
            endpoint: endpoint, apiKey: apiKey, version: version, written: writePromise.futureResult,
            response: promise?.futureResult)
    }

    /// A request on the wire whose response (if it expects one) is still to come.
    struct PendingFrame: Sendable {
        let endpoint: String
        let apiKey: Int16
        let version: Int16
        let written: EventLoopFuture<Void>
        let response: EventLoopFuture<ByteBuffer>?

        /// The response body after its header, or nil for a request without a response.
        func body() async throws -> ByteBuffer? {
            guard let response else {
                do {
                    try await written.get()
                } catch {
                    throw error is KafkaClientError ? error : KafkaClientError.connectionClosed(endpoint)
                }
                return nil
            }
            var body = try await response.get()
            do {
                _ = try ResponseHeader(
                    from: &body, version: KafkaHeaderVersions.response(apiKey: apiKey, apiVersion: version))
            } catch {
                throw KafkaClientError(.malformedResponse, "bad response header from \(endpoint): \(error)")
            }
            return body
        }
    }

    /// False once the socket is closed, by either side; such a transport never recovers.
    var isActive: Bool { channel.isActive }

    func close() async {
        try? await channel.close()
    }
}
