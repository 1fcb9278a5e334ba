import Logging
import NIOCore
import NIOSSL
import NIOTLS
import OnceCore

/// Sits behind the TLS handler of an SSL or SASL_SSL listener until the handshake is done. A
/// handshake must finish within the request read timeout, as a request's bytes must, so a client
/// that connects and stalls (or speaks plaintext to a TLS port and waits) holds nothing for long.
/// On success it passes on who the certificate says the client is, then leaves the pipeline.
final class TLSHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    /// Fired down the pipeline once the handshake is done: the client certificate's subject, as
    /// the principal of an SSL listener's connection.
    struct PeerIdentified {
        var principal: KafkaPrincipal
    }

    private let timeout: TimeAmount
    private let principalFromCertificate: Bool
    private let logger: Logger
    private var deadline: Scheduled<Void>?
    private var done = false

    init(timeout: TimeAmount, principalFromCertificate: Bool, logger: Logger) {
        self.timeout = timeout
        self.principalFromCertificate = principalFromCertificate
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { armDeadline(context: context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        armDeadline(context: context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
    }

    private func armDeadline(context: ChannelHandlerContext) {
        guard deadline == nil else { return }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let timeout = self.timeout
        deadline = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = bound.value
            guard !handler.done else { return }
            handler.done = true
            handler.logger.warning(
                "closing connection", metadata: ["reason": "TLS handshake unfinished after \(timeout.nanoseconds / 1_000_000) ms"])
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let tls = event as? TLSUserEvent, case .handshakeCompleted = tls, !done else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        done = true
        deadline?.cancel()
        context.fireUserInboundEventTriggered(event)
        if principalFromCertificate {
            do {
                if let certificate = try context.pipeline.syncOperations.nioSSL_peerCertificate() {
                    let subject = try CertificateSubject.rfc2253(certificateDER: certificate.toDERBytes())
                    let principal = KafkaPrincipal(name: subject)
                    logger.info("TLS client authenticated", metadata: ["principal": "\(principal)"])
                    context.fireUserInboundEventTriggered(PeerIdentified(principal: principal))
                }
            } catch {
                // A certificate the TLS layer verified but whose subject cannot be read must not
                // fall back to ANONYMOUS silently: the client is refused instead.
                logger.warning("closing connection", metadata: ["reason": "unreadable client certificate subject: \(error)"])
                context.close(promise: nil)
                return
            }
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    /// A failed handshake is one line naming why (a plaintext client, an unknown CA, no client
    /// certificate); the TLS handler has already sent its alert, and the connection closes.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !done else {
            context.fireErrorCaught(error)
            return
        }
        done = true
        deadline?.cancel()
        logger.warning("closing connection", metadata: ["reason": "TLS handshake failed: \(Self.reason(error))"])
        context.close(promise: nil)
    }

    /// BoringSSL's reason codes (`PEER_DID_NOT_RETURN_A_CERTIFICATE`, `WRONG_VERSION_NUMBER`)
    /// without the source paths and numbers NIOSSL's description wraps them in.
    static func reason(_ error: any Error) -> String {
        let text = "\(error)"
        let codes = text.split(separator: ":").compactMap { part -> String? in
            let token = part.prefix { $0.isUppercase || $0.isNumber || $0 == "_" }
            return token.count > 3 && token.contains("_") && !token.hasPrefix("OPENSSL") ? String(token) : nil
        }
        return codes.isEmpty ? text : codes.joined(separator: ", ")
    }
}
