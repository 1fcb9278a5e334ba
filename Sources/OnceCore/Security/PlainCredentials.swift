/// A SASL/PLAIN message (RFC 4616): `authzid NUL authcid NUL passwd`, checked as Kafka's
/// PlainSaslServer checks it. The messages are Kafka's, sent to the client as they are.
public struct PlainCredentials: Sendable {
    public var username: String
    public var password: String

    public enum Failure: Error, Sendable, Hashable, CustomStringConvertible {
        case malformed(tokens: Int)
        case noUsername
        case noPassword
        case authorizationIdMismatch

        public var description: String {
            switch self {
            case .malformed(let tokens): "Invalid SASL/PLAIN response: expected 3 tokens, got \(tokens)"
            case .noUsername: "Authentication failed: username not specified"
            case .noPassword: "Authentication failed: password not specified"
            case .authorizationIdMismatch:
                "Authentication failed: Client requested an authorization id that is different from username"
            }
        }
    }

    public init(parsing message: [UInt8]) throws {
        let tokens = message.split(separator: 0, omittingEmptySubsequences: false)
        guard tokens.count == 3 else { throw Failure.malformed(tokens: tokens.count) }
        let authorizationId = String(decoding: tokens[0], as: UTF8.self)
        username = String(decoding: tokens[1], as: UTF8.self)
        password = String(decoding: tokens[2], as: UTF8.self)
        guard !username.isEmpty else { throw Failure.noUsername }
        guard !password.isEmpty else { throw Failure.noPassword }
        guard authorizationId.isEmpty || authorizationId == username else { throw Failure.authorizationIdMismatch }
    }

    /// The message a client sends.
    public static func message(username: String, password: String) -> [UInt8] {
        [0] + Array(username.utf8) + [0] + Array(password.utf8)
    }
}
