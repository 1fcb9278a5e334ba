/// The server side of one SCRAM authentication (RFC 5802), as Kafka's ScramSaslServer runs it:
/// client-first in, server-first out; client-final in, server-final out and the user
/// authenticated, or a failure. Channel binding is not offered (Kafka offers none), so the only
/// GS2 header accepted is `n,,` or `n,a=USER,` naming the user itself; SCRAM extensions are
/// refused, because the one Kafka knows (`tokenauth`) means delegation tokens, which this broker
/// does not issue.
///
/// The nonce and the credential come in as arguments, so the exchange is deterministic.
public struct ScramServerExchange: Sendable {
    /// Why an exchange failed. Descriptions are for the broker's log and name no secret.
    public enum Failure: Sendable, Hashable, CustomStringConvertible {
        case malformed(String)
        case unsupported(String)
        case unknownUser(String)
        case authorizationIdMismatch(String)
        case tooFewIterations(user: String, iterations: Int)
        case invalidProof(user: String)
        case nonceMismatch(user: String)
        case unexpectedMessage

        public var description: String {
            switch self {
            case .malformed(let why): "malformed SCRAM message: \(why)"
            case .unsupported(let what): "unsupported SCRAM feature: \(what)"
            case .unknownUser(let user): "no SCRAM credential for user '\(user)'"
            case .authorizationIdMismatch(let user): "authorization id differs from user '\(user)'"
            case .tooFewIterations(let user, let iterations):
                "stored credential of user '\(user)' has \(iterations) iterations, fewer than \(ScramMechanism.minIterations)"
            case .invalidProof(let user): "invalid client proof for user '\(user)'"
            case .nonceMismatch(let user): "client-final nonce of user '\(user)' does not extend the server nonce"
            case .unexpectedMessage: "message after the exchange ended"
            }
        }

        /// The user the client claimed, once known: for the log line.
        public var user: String? {
            switch self {
            case .unknownUser(let user), .authorizationIdMismatch(let user), .tooFewIterations(let user, _),
                .invalidProof(let user), .nonceMismatch(let user):
                user
            case .malformed, .unsupported, .unexpectedMessage: nil
            }
        }
    }

    public enum Action: Sendable, Hashable {
        /// Send this challenge (server-first) and wait for client-final.
        case challenge([UInt8])
        /// The user proved who they are; send server-final.
        case authenticated(user: String, serverFinal: [UInt8])
        case fail(Failure)
    }

    private struct Pending: Sendable {
        var user: String
        var credential: ScramCredential
        var gs2Header: Substring
        var clientFirstBare: Substring
        var serverFirst: String
        var nonce: String
    }

    private enum State: Sendable {
        case awaitingClientFirst
        case awaitingClientFinal(Pending)
        case done
    }

    public let mechanism: ScramMechanism
    private let formulas: ScramFormulas
    private var state = State.awaitingClientFirst

    public init(mechanism: ScramMechanism, hashing: any ScramHashing) {
        self.mechanism = mechanism
        self.formulas = ScramFormulas(mechanism, hashing: hashing)
    }

    /// Whether the exchange expects another client message.
    public var isFinished: Bool {
        if case .done = state { return true }
        return false
    }

    /// The next client message. `credential` looks up the stored credential of the user the
    /// client-first names; `serverNonce` is fresh randomness (printable, no commas) the caller drew.
    public mutating func received(
        _ message: [UInt8], serverNonce: String, credential: (String) -> ScramCredential?
    ) -> Action {
        switch state {
        case .awaitingClientFirst:
            let action = clientFirstReceived(message, serverNonce: serverNonce, credential: credential)
            if case .fail = action { state = .done }
            return action
        case .awaitingClientFinal(let pending):
            state = .done
            return clientFinalReceived(message, pending)
        case .done:
            return .fail(.unexpectedMessage)
        }
    }

    private mutating func clientFirstReceived(
        _ message: [UInt8], serverNonce: String, credential lookUp: (String) -> ScramCredential?
    ) -> Action {
        guard let text = String(validating: message, as: UTF8.self) else { return .fail(.malformed("not UTF-8")) }
        // gs2-header = cbind-flag "," [ authzid ] ","
        let parts = text.split(separator: ",", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { return .fail(.malformed("no GS2 header")) }
        guard parts[0] == "n" else {
            return parts[0] == "y" || parts[0].hasPrefix("p=")
                ? .fail(.unsupported("channel binding")) : .fail(.malformed("bad channel-binding flag"))
        }
        var authorizationId: String?
        if !parts[1].isEmpty {
            guard parts[1].hasPrefix("a="), let id = ScramMessage.unescape(saslName: parts[1].dropFirst(2)) else {
                return .fail(.malformed("bad authorization id"))
            }
            authorizationId = id
        }
        let bare = parts[2]
        let gs2Header = text[text.startIndex..<bare.startIndex]
        guard let attributes = ScramMessage.attributes(bare), attributes.count >= 2 else {
            return .fail(.malformed("client-first is not n=USER,r=NONCE"))
        }
        if attributes[0].key == "m" { return .fail(.unsupported("mandatory extension")) }
        guard attributes[0].key == "n", let user = ScramMessage.unescape(saslName: attributes[0].value) else {
            return .fail(.malformed("bad user name"))
        }
        guard attributes[1].key == "r", ScramMessage.isNonce(attributes[1].value) else {
            return .fail(.malformed("bad client nonce"))
        }
        guard attributes.count == 2 else { return .fail(.unsupported("extensions")) }
        guard let stored = lookUp(user) else { return .fail(.unknownUser(user)) }
        if let authorizationId, authorizationId != user { return .fail(.authorizationIdMismatch(user)) }
        guard stored.iterations >= ScramMechanism.minIterations else {
            return .fail(.tooFewIterations(user: user, iterations: stored.iterations))
        }
        let nonce = String(attributes[1].value) + serverNonce
        let serverFirst = "r=\(nonce),s=\(Base64.encode(stored.salt)),i=\(stored.iterations)"
        state = .awaitingClientFinal(
            Pending(
                user: user, credential: stored, gs2Header: gs2Header, clientFirstBare: bare,
                serverFirst: serverFirst, nonce: nonce))
        return .challenge(Array(serverFirst.utf8))
    }

    private func clientFinalReceived(_ message: [UInt8], _ pending: Pending) -> Action {
        guard let text = String(validating: message, as: UTF8.self) else { return .fail(.malformed("not UTF-8")) }
        guard let attributes = ScramMessage.attributes(text[...]), attributes.count >= 3,
            attributes[0].key == "c", attributes[1].key == "r", let last = attributes.last, last.key == "p"
        else { return .fail(.malformed("client-final is not c=...,r=...,p=...")) }
        guard attributes.count == 3 else { return .fail(.unsupported("extensions")) }
        guard let binding = Base64.decode(attributes[0].value), binding == Array(pending.gs2Header.utf8) else {
            return .fail(.unsupported("channel binding"))
        }
        // Kafka accepts any nonce that ends with the one it sent (ScramSaslServer), and
        // librdkafka 2.0 relies on that: it sends its own nonce again in front.
        guard attributes[1].value.hasSuffix(pending.nonce) else { return .fail(.nonceMismatch(user: pending.user)) }
        guard let proof = Base64.decode(last.value), proof.count == mechanism.digestLength else {
            return .fail(.malformed("bad proof"))
        }
        let withoutProof = text[text.startIndex..<text.index(last.value.startIndex, offsetBy: -3)]
        let authMessage = Array("\(pending.clientFirstBare),\(pending.serverFirst),\(withoutProof)".utf8)
        let signature = formulas.clientSignature(storedKey: pending.credential.storedKey, authMessage: authMessage)
        let clientKey = xor(proof, signature)
        guard constantTimeEqual(formulas.storedKey(clientKey: clientKey), pending.credential.storedKey) else {
            return .fail(.invalidProof(user: pending.user))
        }
        let serverSignature = formulas.serverSignature(serverKey: pending.credential.serverKey, authMessage: authMessage)
        return .authenticated(user: pending.user, serverFinal: Array("v=\(Base64.encode(serverSignature))".utf8))
    }
}
