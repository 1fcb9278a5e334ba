import KafkaProtocol
import NIOCore
import NIOSSL

/// One encoded request on its way to the broker, with where its response should go.
struct OutboundKafkaRequest: Sendable {
    var correlationId: Int32
    var apiKey: Int16
    /// The whole frame, size prefix included.
    var frame: ByteBuffer
    /// Nil for a request the broker does not answer (produce with acks=0).
    var response: EventLoopPromise<ByteBuffer>?
    var timeout: TimeAmount
}

/// Matches response frames to the requests that are waiting for them, so several requests can
/// be in flight on one connection.
///
/// A request that outlives its timeout fails and the connection is closed: a late answer would
/// otherwise be paired with nothing, and Kafka gives no way to cancel a request in flight.
final class KafkaResponseRouter: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = OutboundKafkaRequest
    typealias OutboundOut = ByteBuffer

    private struct Pending {
        var apiKey: Int16
        var promise: EventLoopPromise<ByteBuffer>
        var timeoutTask: Scheduled<Void>?
        var timeout: TimeAmount
    }

    private let endpoint: String
    private var pending = CorrelationTable<Pending>()
    /// Set once the connection can no longer carry requests; later writes fail with it.
    private var failure: KafkaClientError?

    init(endpoint: String) {
        self.endpoint = endpoint
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let request = unwrapOutboundIn(data)
        if let failure {
            request.response?.fail(failure)
            promise?.fail(failure)
            return
        }
        if let response = request.response {
            let id = request.correlationId
            let task = context.eventLoop.assumeIsolated().scheduleTask(in: request.timeout) { [self] in
                self.timedOut(id, context: context)
            }
            pending.register(
                id, Pending(apiKey: request.apiKey, promise: response, timeoutTask: task, timeout: request.timeout))
        }
        context.write(wrapOutboundOut(request.frame), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        guard let id = frame.getInteger(at: frame.readerIndex, endianness: .big, as: Int32.self) else {
            fail(context: context, KafkaClientError(.malformedResponse, "response from \(endpoint) without a correlation id"))
            return
        }
        switch pending.complete(id) {
        case .matched(let entry):
            entry.timeoutTask?.cancel()
            entry.promise.succeed(frame)
        case .outOfOrder(let expected):
            fail(context: context, KafkaClientError(
                .unexpectedResponse, "\(endpoint) answered correlation id \(id) before \(expected)"))
        case .unknown:
            fail(context: context, KafkaClientError(
                .unexpectedResponse, "\(endpoint) sent a response with unknown correlation id \(id)"))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(KafkaClientError.connectionClosed(endpoint))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Under TLS 1.3 a broker refuses a client certificate after the client's side of the
        // handshake is done, so the refusal arrives here, on the first response.
        let tlsError = error is NIOSSLError || error is BoringSSLError
        let clientError = error as? KafkaClientError
            ?? (tlsError ? KafkaClientError.tlsHandshakeFailed(endpoint, error) : nil)
            ?? KafkaClientError(.malformedResponse, "connection to \(endpoint) failed: \(error)")
        fail(context: context, clientError)
    }

    private func timedOut(_ id: Int32, context: ChannelHandlerContext) {
        guard let entry = pending.remove(id) else { return }
        let error = KafkaClientError.requestTimedOut(endpoint, apiKey: entry.apiKey, after: entry.timeout)
        entry.promise.fail(error)
        fail(context: context, KafkaClientError.connectionClosed(endpoint))
    }

    private func fail(context: ChannelHandlerContext, _ error: KafkaClientError) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: KafkaClientError) {
        if failure == nil { failure = error }
        for entry in pending.removeAll() {
            entry.timeoutTask?.cancel()
            entry.promise.fail(error)
        }
    }
}
