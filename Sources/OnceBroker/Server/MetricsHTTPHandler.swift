import NIOCore
import NIOHTTP1
import Prometheus

/// Serves `GET /metrics` in Prometheus text format; anything else is 404. Small on purpose: one
/// endpoint does not justify an HTTP framework in the broker's build.
final class MetricsHTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let registry: PrometheusCollectorRegistry
    private let state: BrokerStateMetrics
    private var path: String?

    /// - Parameter state: the scrape-time gauges, written after the registry's families.
    init(registry: PrometheusCollectorRegistry, state: BrokerStateMetrics) {
        self.registry = registry
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            path = head.method == .GET ? head.uri : nil
        case .body:
            break
        case .end:
            let found = path == "/metrics" || path?.hasPrefix("/metrics?") == true
            let body = found ? registry.emitToBuffer() + state.render() : Array("not found\n".utf8)
            var headers = HTTPHeaders()
            headers.add(name: "Content-Type", value: found ? "text/plain; version=0.0.4" : "text/plain")
            headers.add(name: "Content-Length", value: String(body.count))
            let head = HTTPResponseHead(version: .http1_1, status: found ? .ok : .notFound, headers: headers)
            context.write(wrapOutboundOut(.head(head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            path = nil
        }
    }
}
