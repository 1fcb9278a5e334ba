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
    /// After SaslHandshake v0 the tokens travel as bare size-prefixed frames, without request
    /// headers (the framing before KIP-152), until authentication ends.
    var rawTokens = false

    /// Whether the next frame is a bare token rather than a request.
    var expectsRawToken: Bool {
        guard rawTokens else { return false }
        switch phase {
        case .awaitingToken, .scram: return true
        case .awaitingHandshake, .authenticated, .failed: return false
        }
    }

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
