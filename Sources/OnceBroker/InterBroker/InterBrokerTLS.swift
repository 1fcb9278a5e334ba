import Foundation
import NIOCore
import NIOSSL
import NIOTLS

/// TLS of this broker's connections to an SSL or SASL_SSL inter-broker listener, as a Kafka
/// broker opens them: the peer's certificate must chain to the broker's CA bundle (Kafka's
/// `ssl.truststore`) and, under `ssl.endpoint.identification.algorithm=https`, name the host or IP
/// address the peer advertises; the broker presents its own certificate and key (Kafka's
/// `ssl.keystore`) as its client certificate, so a peer with `ssl.client.auth=required` accepts it
/// and, on an SSL listener, names it by its subject for the authorizer.
struct InterBrokerTLS: Sendable {
    let context: NIOSSLContext

    /// Built once at start, so a missing CA bundle or a key that does not match refuses the broker
    /// instead of failing every marker later.
    init(_ config: BrokerConfig, now: Date = Date()) throws {
        if let problem = config.interBrokerProblem { throw StartupError(description: problem) }
        guard let tls = config.tls, tls.caLocation != nil else {
            throw StartupError(description: InterBrokerTLS.missingAuthorities)
        }
        let (chain, key) = try tls.loadIdentity(now: now)
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateChain = chain.map { .certificate($0) }
        configuration.privateKey = .privateKey(key)
        configuration.trustRoots = .certificates(try tls.loadAuthorities())
        configuration.certificateVerification = switch tls.endpointIdentification {
        case .https: .fullVerification
        case .none: .noHostnameVerification
        }
        context = try tls.makeContext(configuration)
    }

    static let missingAuthorities =
        "an SSL or SASL_SSL inter-broker listener verifies the other brokers' certificates against --ssl-ca-location (Kafka's ssl.truststore.location): give the PEM bundle of the CA that signed them"

    /// The name for SNI and the certificate check; none for an IP address, which SNI cannot carry
    /// and which NIOSSL then checks against the certificate's IP entries.
    static func hostname(connectingTo host: String) -> String? {
        (try? SocketAddress(ipAddress: host, port: 0)) == nil ? host : nil
    }
}

/// Holds a new connection until its TLS handshake is done, within the request timeout, so a peer
/// whose certificate is refused (or that does not speak TLS, or stalls) fails the connect with the
/// handshake's reason rather than the first request with a closed connection.
final class InterBrokerHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    struct Failed: Error, CustomStringConvertible {
        var description: String
    }

    private let done: EventLoopPromise<Void>
    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    private var completed = false

    init(done: EventLoopPromise<Void>, timeout: TimeAmount) {
        self.done = done
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { armDeadline(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        armDeadline(context: context)
        context.fireChannelActive()
    }

    private func armDeadline(context: ChannelHandlerContext) {
        guard deadline == nil else { return }
        let timeout = self.timeout
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) { [self] in
            complete(.failure(Failed(description: "no TLS handshake within \(timeout.nanoseconds / 1_000_000) ms")))
            context.close(promise: nil)
        }
    }

    private func complete(_ result: Result<Void, any Error>) {
        guard !completed else { return }
        completed = true
        deadline?.cancel()
        done.completeWith(result)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
            complete(.success(()))
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        complete(.failure(Failed(description: Self.reason(error))))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        complete(.failure(Failed(description: "the peer closed the connection during the handshake (is its listener TLS?)")))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        complete(.failure(ChannelError.ioOnClosedChannel))
    }

    /// BoringSSL's reason codes, with a hint for the usual causes.
    static func reason(_ error: any Error) -> String {
        if (error as? NIOSSLExtraError) == .failedToValidateHostname {
            return "the peer's certificate does not name the address it advertises (\(error))"
        }
        let codes = TLSHandshakeHandler.reason(error)
        if codes.contains("CERTIFICATE_VERIFY_FAILED") {
            return codes + " (the peer's certificate is expired or not signed by a CA in --ssl-ca-location)"
        }
        if codes.contains("ALERT_UNKNOWN_CA") || codes.contains("ALERT_BAD_CERTIFICATE") || codes.contains("CERTIFICATE_REQUIRED") {
            return codes + " (the peer does not accept this broker's certificate)"
        }
        return codes
    }
}
