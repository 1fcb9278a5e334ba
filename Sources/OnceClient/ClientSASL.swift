import KafkaProtocol
import OnceCore
import OnceCrypto

/// SASL credentials a client authenticates every connection with, after ApiVersions and before
/// any other request, as a SASL_PLAINTEXT or SASL_SSL listener requires.
public struct ClientSASL: Sendable, Hashable {
    public enum Mechanism: String, Sendable, CaseIterable, Hashable {
        case plain = "PLAIN"
        case scramSha256 = "SCRAM-SHA-256"
        case scramSha512 = "SCRAM-SHA-512"
    }

    public var mechanism: Mechanism
    public var username: String
    public var password: String

    public init(mechanism: Mechanism, username: String, password: String) {
        self.mechanism = mechanism
        self.username = username
        self.password = password
    }
}

extension ClientSASL: CustomStringConvertible {
    /// Names the user and mechanism, never the password, so a logged configuration leaks nothing.
    public var description: String { "ClientSASL(\(mechanism.rawValue), user: \(username))" }
}

/// SaslHandshake v1, then SaslAuthenticate rounds (KIP-152) until the mechanism is done. Every
/// failure becomes a `KafkaClientError` of kind `.authenticationFailed` naming the broker's error.
enum SaslAuthentication {
    static func authenticate(_ sasl: ClientSASL, over transport: KafkaTransport, versions: ApiVersionTable) async throws {
        let endpoint = transport.endpoint
        func failed(_ reason: String) -> KafkaClientError {
            KafkaClientError(.authenticationFailed, "SASL \(sasl.mechanism.rawValue) authentication as '\(sasl.username)' to \(endpoint) failed: \(reason)")
        }
        guard let handshakeVersion = versions.version(for: SaslHandshakeRequest.self), handshakeVersion >= 1,
            let authenticateVersion = versions.version(for: SaslAuthenticateRequest.self)
        else { throw failed("the broker does not offer SaslHandshake v1 and SaslAuthenticate") }

        var handshake = SaslHandshakeRequest()
        handshake.mechanism = sasl.mechanism.rawValue
        let handshakeResponse: SaslHandshakeResponse = try await send(handshake, handshakeVersion, transport)
        if let error = KafkaError(errorCode: handshakeResponse.errorCode) {
            let offered = handshakeResponse.mechanisms.joined(separator: ", ")
            throw failed("\(error.name) (broker enables: \(offered.isEmpty ? "none" : offered))")
        }

        func round(_ token: [UInt8]) async throws -> [UInt8] {
            var request = SaslAuthenticateRequest()
            request.authBytes = token
            let response: SaslAuthenticateResponse = try await send(request, authenticateVersion, transport)
            if let error = KafkaError(errorCode: response.errorCode, message: response.errorMessage) {
                throw failed(error.description)
            }
            return response.authBytes
        }

        switch sasl.mechanism {
        case .plain:
            _ = try await round(PlainCredentials.message(username: sasl.username, password: sasl.password))
        case .scramSha256, .scramSha512:
            var exchange = ScramClientExchange(
                mechanism: sasl.mechanism == .scramSha256 ? .sha256 : .sha512, username: sasl.username,
                password: sasl.password, clientNonce: LibCrypto.nonce(), hashing: LibCrypto())
            do {
                let serverFirst = try await round(exchange.clientFirstMessage)
                let serverFinal = try await round(try exchange.serverFirstReceived(serverFirst))
                try exchange.serverFinalReceived(serverFinal)
            } catch let failure as ScramClientExchange.Failure {
                throw failed("\(failure)")
            }
        }
    }

    private static func send<R: KafkaRequest>(_ request: R, _ version: Int16, _ transport: KafkaTransport) async throws -> R.Response {
        guard var body = try await transport.roundTrip(
            apiKey: R.apiKey, version: version, encodeBody: { request.encode(into: &$0, version: version) })
        else { preconditionFailure("a round trip that expects a response returned none") }
        do {
            return try R.Response(from: &body, version: version)
        } catch {
            throw KafkaClientError(.malformedResponse, "cannot decode \(R.Response.self) v\(version) from \(transport.endpoint): \(error)")
        }
    }
}
