/// The client side of one SCRAM authentication (RFC 5802): client-first, then client-final from
/// the server's challenge, then a check that the server-final proves the server knew the
/// credential too. Checks what Kafka's client checks: the nonce extends ours, at least 4096
/// iterations. The nonce comes in as an argument, so the exchange is deterministic.
public struct ScramClientExchange: Sendable {
    public enum Failure: Error, Sendable, Hashable, CustomStringConvertible {
        case malformedServerMessage(String)
        case serverError(String)
        case nonceMismatch
        case tooFewIterations(Int)
        case invalidServerSignature
        case unexpectedMessage

        public var description: String {
            switch self {
            case .malformedServerMessage(let why): "malformed SCRAM server message: \(why)"
            case .serverError(let error): "SCRAM server error: \(error)"
            case .nonceMismatch: "server nonce does not extend the client nonce"
            case .tooFewIterations(let n): "server asks for \(n) iterations, fewer than \(ScramMechanism.minIterations)"
            case .invalidServerSignature: "server signature is invalid: the server does not know this user's credential"
            case .unexpectedMessage: "server message after the exchange ended"
            }
        }
    }

    private enum State: Sendable {
        case awaitingServerFirst
        case awaitingServerFinal(serverSignature: [UInt8])
        case done
    }

    public let mechanism: ScramMechanism
    private let formulas: ScramFormulas
    private let password: String
    private let clientNonce: String
    private let clientFirstBare: String
    private var state = State.awaitingServerFirst
    private static let gs2Header = "n,,"

    /// `clientNonce` must be printable ASCII without commas (the caller draws it at random).
    public init(mechanism: ScramMechanism, username: String, password: String, clientNonce: String, hashing: any ScramHashing) {
        self.mechanism = mechanism
        self.formulas = ScramFormulas(mechanism, hashing: hashing)
        self.password = password
        self.clientNonce = clientNonce
        self.clientFirstBare = "n=\(ScramMessage.escape(username: username)),r=\(clientNonce)"
    }

    public var clientFirstMessage: [UInt8] { Array((Self.gs2Header + clientFirstBare).utf8) }

    /// Returns client-final.
    public mutating func serverFirstReceived(_ message: [UInt8]) throws -> [UInt8] {
        guard case .awaitingServerFirst = state else { throw Failure.unexpectedMessage }
        state = .done
        guard let text = String(validating: message, as: UTF8.self), let attributes = ScramMessage.attributes(text[...]) else {
            throw Failure.malformedServerMessage("server-first is not attributes")
        }
        if let error = attributes.first(where: { $0.key == "e" }) { throw Failure.serverError(String(error.value)) }
        guard attributes.count >= 3, attributes[0].key == "r", attributes[1].key == "s", attributes[2].key == "i" else {
            throw Failure.malformedServerMessage("server-first is not r=...,s=...,i=...")
        }
        let nonce = attributes[0].value
        guard nonce.hasPrefix(clientNonce), nonce.count > clientNonce.count, ScramMessage.isNonce(nonce) else {
            throw Failure.nonceMismatch
        }
        guard let salt = Base64.decode(attributes[1].value), !salt.isEmpty else {
            throw Failure.malformedServerMessage("bad salt")
        }
        guard let iterations = Int(attributes[2].value) else { throw Failure.malformedServerMessage("bad iteration count") }
        guard iterations >= ScramMechanism.minIterations else { throw Failure.tooFewIterations(iterations) }
        let salted = formulas.saltedPassword(password, salt: salt, iterations: iterations)
        let clientKey = formulas.clientKey(saltedPassword: salted)
        let storedKey = formulas.storedKey(clientKey: clientKey)
        let withoutProof = "c=\(Base64.encode(Array(Self.gs2Header.utf8))),r=\(nonce)"
        let authMessage = Array("\(clientFirstBare),\(text),\(withoutProof)".utf8)
        let proof = formulas.clientProof(clientKey: clientKey, storedKey: storedKey, authMessage: authMessage)
        let serverSignature = formulas.serverSignature(
            serverKey: formulas.serverKey(saltedPassword: salted), authMessage: authMessage)
        state = .awaitingServerFinal(serverSignature: serverSignature)
        return Array("\(withoutProof),p=\(Base64.encode(proof))".utf8)
    }

    public mutating func serverFinalReceived(_ message: [UInt8]) throws {
        guard case .awaitingServerFinal(let expected) = state else { throw Failure.unexpectedMessage }
        state = .done
        guard let text = String(validating: message, as: UTF8.self), let attributes = ScramMessage.attributes(text[...]),
            let first = attributes.first
        else { throw Failure.malformedServerMessage("server-final is not attributes") }
        if first.key == "e" { throw Failure.serverError(String(first.value)) }
        guard first.key == "v", let signature = Base64.decode(first.value) else {
            throw Failure.malformedServerMessage("server-final is not v=...")
        }
        guard constantTimeEqual(signature, expected) else { throw Failure.invalidServerSignature }
    }
}
