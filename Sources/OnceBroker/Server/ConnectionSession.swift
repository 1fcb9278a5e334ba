import OnceCore
import Synchronization

/// Kafka's four security protocols, as a listener names them (`SASL_SSL://host:port`).
public enum SecurityProtocol: String, Sendable, CaseIterable {
    case plaintext = "PLAINTEXT"
    case ssl = "SSL"
    case saslPlaintext = "SASL_PLAINTEXT"
    case saslSsl = "SASL_SSL"

    public var usesTLS: Bool { self == .ssl || self == .saslSsl }
    public var usesSASL: Bool { self == .saslPlaintext || self == .saslSsl }
}

/// One connection's security state, shared by every request the connection carries: which listener
/// it came through (Metadata answers with that listener's advertised address) and the principal it
/// acts for, which starts as what the transport established (ANONYMOUS, or a client certificate's
/// subject) and changes once, when SASL authentication succeeds.
public final class ConnectionSession: Sendable {
    public let listenerName: String
    public let securityProtocol: SecurityProtocol
    /// The client's IP address, as ACLs' host field and per-address limits see it.
    public let peerHost: String
    private let authenticated: Mutex<KafkaPrincipal>
    /// How far SASL authentication has come (SASL listeners only).
    let sasl = Mutex(SaslSessionState())
    /// The connection's Produce appends, in request order.
    let appendOrder = ConnectionAppendOrder()

    public init(
        listenerName: String, securityProtocol: SecurityProtocol, peerHost: String,
        principal: KafkaPrincipal = .anonymous
    ) {
        self.listenerName = listenerName
        self.securityProtocol = securityProtocol
        self.peerHost = peerHost
        self.authenticated = Mutex(principal)
    }

    public var principal: KafkaPrincipal { authenticated.withLock { $0 } }

    func authenticate(as principal: KafkaPrincipal) {
        authenticated.withLock { $0 = principal }
    }

    /// What tests and in-process callers use: a plaintext connection from loopback.
    static func plaintext(peerHost: String = "127.0.0.1") -> ConnectionSession {
        ConnectionSession(listenerName: SecurityProtocol.plaintext.rawValue, securityProtocol: .plaintext, peerHost: peerHost)
    }
}
