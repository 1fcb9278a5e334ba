import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import ServiceLifecycle

/// HTTP/1.1 over NIOHTTP1 with structured concurrency: each connection is a child task that reads
/// whole requests under the limits, asks the router, and writes the answer. Routes do their own
/// broker work off the event loop, so a slow snapshot delays only its own connection.
struct ConsoleHTTPServer: Sendable {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    let configuration: ConsoleService.Configuration
    let router: ConsoleRouter
    let logger: Logger

    /// Serves until graceful shutdown or cancellation; `onReady` gets the bound port.
    func run(onReady: @Sendable (_ port: Int) -> Void) async throws {
        let limits = {
            var limits = NIOHTTPDecoderLimitConfiguration()
            limits.maxHeaderFieldSize = configuration.maxRequestHeaderBytes
            limits.maxHeaderListSize = configuration.maxRequestHeaderBytes
            limits.maxHeaderFieldCount = configuration.maxRequestHeaders
            return limits
        }()
        let connections = ConsoleConnections(limit: configuration.maxConnections)
        let idleTimeout = TimeAmount.milliseconds(configuration.connectionsMaxIdleMs)
        let logger = self.logger
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: configuration.host, port: configuration.port) { channel -> EventLoopFuture<Connection> in
                // Over the limit, the connection is closed as accepted, as the Kafka listener does.
                guard connections.admit() else {
                    logger.warning("refusing a console connection", metadata: [
                        "peer": "\(channel.remoteAddress?.description ?? "?")",
                        "reason": "\(connections.limit) open (--http-max-connections)",
                    ])
                    // The async bootstrap does not close a channel whose initializer failed.
                    channel.close(promise: nil)
                    return channel.eventLoop.makeFailedFuture(ChannelError.inputClosed)
                }
                channel.closeFuture.whenComplete { _ in connections.release() }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: idleTimeout))
                    try channel.pipeline.syncOperations.addHandler(ConsoleIdleCloser())
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withErrorHandling: false, withEncoderConfiguration: .init(), withDecoderLimitConfiguration: limits)
                    try channel.pipeline.syncOperations.addHandler(ConsoleProtocolErrorHandler())
                    return try Connection(wrappingChannelSynchronously: channel)
                }
            }
        onReady(server.channel.localAddress?.port ?? configuration.port)
        try? await cancelWhenGracefulShutdown {
            try await withThrowingDiscardingTaskGroup { group in
                try await server.executeThenClose { connections in
                    for try await connection in connections {
                        group.addTask { await self.serve(connection) }
                    }
                }
            }
        }
    }

    private func serve(_ connection: Connection) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var reader = ConsoleRequestReader(maxBodyBytes: configuration.maxRequestBodyBytes)
                for try await part in inbound {
                    switch reader.read(part) {
                    case .more:
                        continue
                    case .request(let request):
                        let response = if let parsed = ConsoleRequest(head: request.head) {
                            await router.respond(to: parsed)
                        } else {
                            ConsoleResponse.error(.badRequest, "the request target must be a path")
                        }
                        let keepAlive = request.head.isKeepAlive
                        try await Self.write(response, version: request.head.version, keepAlive: keepAlive, to: outbound)
                        if !keepAlive { return }
                    case .refuse(let status, let message):
                        try await Self.write(.error(status, message), version: .http1_1, keepAlive: false, to: outbound)
                        return
                    }
                }
            }
        } catch {
            logger.debug("console connection ended", metadata: ["error": "\(error)"])
        }
    }

    private static func write(
        _ response: ConsoleResponse, version: HTTPVersion, keepAlive: Bool,
        to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws {
        var headers = HTTPHeaders(response.headers)
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
        if !keepAlive { headers.replaceOrAdd(name: "Connection", value: "close") }
        try await outbound.write(.head(HTTPResponseHead(version: version, status: response.status, headers: headers)))
        try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: response.body))))
        try await outbound.write(.end(nil))
    }
}
