import NIOCore
import NIOSSL
import NIOTLS
import Synchronization

/// TLS for every connection a client opens, bootstrap and brokers alike (librdkafka's
/// `security.protocol=SSL` with its `ssl.*` settings). The broker's certificate is verified
/// against the trust roots and, by default, against the host name or IP address connected to.
public struct ClientTLS: Sendable, Hashable {
    /// Where the broker's certificate must chain to.
    public enum Trust: Sendable, Hashable {
        /// The system's trust store (Debian: /etc/ssl/certs).
        case system
        /// A PEM CA bundle (`ssl.ca.location`).
        case caBundle(path: String)
    }

    /// Default: `.system`.
    public var trust: Trust = .system
    /// PEM client certificate chain for brokers that ask for one (`ssl.certificate.location`).
    /// Default: none.
    public var certificateLocation: String?
    /// PEM private key of that certificate (`ssl.key.location`). Default: none.
    public var keyLocation: String?
    /// Passphrase of an encrypted key (`ssl.key.password`). Default: none.
    public var keyPassword: String?
    /// Check that the certificate names the host connected to, as librdkafka's
    /// `ssl.endpoint.identification.algorithm=https`. Default: true.
    public var verifyHostname: Bool = true
    /// The name sent as SNI and checked against the certificate instead of the host connected to,
    /// for brokers reached by an address their certificate does not name. Default: nil.
    public var serverName: String?

    public init(trust: Trust = .system) {
        self.trust = trust
    }

    /// Contexts are built once per setting: a client opens a connection per broker and reloads
    /// nothing for each.
    private static let contexts = Mutex<[ClientTLS: NIOSSLContext]>([:])

    func context() throws -> NIOSSLContext {
        if let cached = Self.contexts.withLock({ $0[self] }) { return cached }
        let context = try makeContext()
        Self.contexts.withLock { $0[self] = context }
        return context
    }

    private func makeContext() throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv12
        configuration.certificateVerification = verifyHostname ? .fullVerification : .noHostnameVerification
        do {
            if case .caBundle(let path) = trust {
                configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(path))
            }
        } catch {
            throw KafkaClientError(.tlsFailed, "cannot read the PEM CA bundle \(describe(trust)): \(error)")
        }
        switch (certificateLocation, keyLocation) {
        case (nil, nil):
            break
        case (let certificate?, let key?):
            do {
                configuration.certificateChain = try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) }
            } catch {
                throw KafkaClientError(.tlsFailed, "cannot read a PEM client certificate from \(certificate): \(error)")
            }
            do {
                let privateKey =
                    if let keyPassword {
                        try NIOSSLPrivateKey(file: key, format: .pem) { $0(Array(keyPassword.utf8)) }
                    } else {
                        try NIOSSLPrivateKey(file: key, format: .pem)
                    }
                configuration.privateKey = .privateKey(privateKey)
            } catch {
                throw KafkaClientError(.tlsFailed, "cannot read a PEM private key from \(key): \(error)")
            }
        default:
            throw KafkaClientError(.tlsFailed, "a client certificate needs both its certificate and its key location")
        }
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw KafkaClientError(
                .tlsFailed, "the client key in \(keyLocation ?? "?") does not match \(certificateLocation ?? "?"): \(error)")
        }
    }

    private func describe(_ trust: Trust) -> String {
        switch trust {
        case .system: "(system trust store)"
        case .caBundle(let path): path
        }
    }

    /// The name for SNI and the certificate check; none for an IP address, which SNI cannot
    /// carry and which NIOSSL then checks against the certificate's IP entries.
    func hostname(connectingTo host: String) -> String? {
        let name = serverName ?? host
        let isAddress = (try? SocketAddress(ipAddress: name, port: 0)) != nil
        return isAddress ? nil : name
    }
}

/// Holds a new connection until its TLS handshake is done, so a refused certificate or a broker
/// that does not speak TLS fails `connect` with a TLS error instead of the first request with a
/// closed connection.
final class TLSHandshakeWaiter: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    private let done: EventLoopPromise<Void>
    private var completed = false

    init(done: EventLoopPromise<Void>) {
        self.done = done
    }

    private func complete(_ result: Result<Void, any Error>) {
        guard !completed else { return }
        completed = true
        done.completeWith(result)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let tls = event as? TLSUserEvent, case .handshakeCompleted = tls {
            complete(.success(()))
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        complete(.failure(error))
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        complete(.failure(ChannelError.eof))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        complete(.failure(ChannelError.ioOnClosedChannel))
    }
}

extension KafkaClientError {
    /// What a failed handshake means to a person: BoringSSL's reason codes, and a hint for the
    /// ones that have a usual cause.
    static func tlsHandshakeFailed(_ endpoint: String, _ error: any Error) -> KafkaClientError {
        let reason: String
        switch error {
        case ChannelError.eof:
            reason = "the broker closed the connection during the handshake (is this a TLS listener?)"
        default:
            let text = "\(error)"
            let codes = text.split(separator: ":").compactMap { part -> String? in
                let token = part.prefix { $0.isUppercase || $0.isNumber || $0 == "_" }
                return token.count > 3 && token.contains("_") && !token.hasPrefix("OPENSSL") ? String(token) : nil
            }
            var described = codes.isEmpty ? text : codes.joined(separator: ", ")
            if codes.contains("CERTIFICATE_VERIFY_FAILED") {
                described += " (the broker's certificate is expired, not yet valid, or not signed by a trusted CA)"
            } else if codes.contains(where: { $0.contains("CERTIFICATE_REQUIRED") }) {
                described += " (the broker requires a client certificate)"
            } else if codes.contains("WRONG_VERSION_NUMBER") {
                described += " (the broker's port does not speak TLS)"
            } else if text.contains("failedToValidateHostname") {
                described = "the broker's certificate does not name \(endpoint)"
            }
            reason = described
        }
        return KafkaClientError(.tlsFailed, "TLS handshake with \(endpoint) failed: \(reason)")
    }
}
