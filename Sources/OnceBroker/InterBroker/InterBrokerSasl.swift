import KafkaProtocol
import OnceCore
import OnceCrypto

/// The credentials a broker authenticates its connections to the other brokers with, on a
/// SASL_PLAINTEXT or SASL_SSL inter-broker listener (inside the TLS session on the latter):
/// SaslHandshake v1, then SaslAuthenticate rounds (KIP-152), as a Kafka broker logs in to its peers.
/// The principal they name is the cluster's: grant it CLUSTER_ACTION on the cluster, or list it in
/// `--super-users`.
struct InterBrokerSasl: Sendable {
    var mechanism: SaslMechanism
    var username: String
    var password: String

    struct Refused: Error, CustomStringConvertible {
        var description: String
    }

    func authenticate(over connection: InterBrokerConnection) async throws {
        var handshake = SaslHandshakeRequest()
        handshake.mechanism = mechanism.rawValue
        let answer = try await connection.send(handshake, version: 1)
        guard answer.errorCode == ErrorCode.none.rawValue else {
            throw Refused(description: "\(ErrorCode(answer.errorCode)) for \(mechanism.rawValue) (the peer enables \(answer.mechanisms))")
        }
        func round(_ token: [UInt8]) async throws -> [UInt8] {
            var request = SaslAuthenticateRequest()
            request.authBytes = token
            let response = try await connection.send(request, version: 2)
            guard response.errorCode == ErrorCode.none.rawValue else {
                throw Refused(description: "\(ErrorCode(response.errorCode)) as '\(username)': \(response.errorMessage ?? "")")
            }
            return response.authBytes
        }
        switch mechanism.scram {
        case nil:
            _ = try await round(PlainCredentials.message(username: username, password: password))
        case let scram?:
            var exchange = ScramClientExchange(
                mechanism: scram, username: username, password: password, clientNonce: LibCrypto.nonce(), hashing: LibCrypto())
            let serverFirst = try await round(exchange.clientFirstMessage)
            let serverFinal = try await round(try exchange.serverFirstReceived(serverFirst))
            try exchange.serverFinalReceived(serverFinal)
        }
    }
}
