import KafkaProtocol
import OnceCore

/// Where a SASL listener's connection is in authentication, as Kafka's SaslServerAuthenticator
/// tracks it: until it succeeds only ApiVersions, SaslHandshake and SaslAuthenticate are served,
/// each in its turn, and anything else closes the connection.
struct SaslSessionState: Sendable {
    enum Phase: Sendable {
        case awaitingHandshake
        case awaitingToken(SaslMechanism)
        case scram(ScramServerExchange)
        case authenticated
        case failed
    }

    var phase = Phase.awaitingHandshake

    func allows(_ api: ApiKey) -> Bool {
        switch phase {
        case .authenticated: true
        case .awaitingHandshake: api == .apiVersions || api == .saslHandshake
        case .awaitingToken, .scram: api == .saslAuthenticate
        case .failed: false
        }
    }

    var isAuthenticated: Bool {
        if case .authenticated = phase { return true }
        return false
    }
}
