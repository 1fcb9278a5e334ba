import OnceCrypto
import Testing

@testable import OnceCore

/// RFC 7677's SCRAM-SHA-256 example, and the same exchange under SHA-512 with the values Python's
/// hashlib/hmac compute for it, run through both exchanges with libcrypto's primitives.
@Suite struct ScramExchangeTests {
    struct Vector: Sendable, CustomStringConvertible {
        var mechanism: ScramMechanism
        var clientFinal: String
        var serverFinal: String
        var description: String { mechanism.rawValue }
    }

    static let clientNonce = "rOprNGfwEbeRWgbNEkqO"
    static let serverNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    static let nonce = clientNonce + serverNonce
    static let salt = Base64.decode("W22ZaJ0SNY7soEsUEjb6gQ==")!
    static let serverFirst = "r=\(nonce),s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    static let vectors = [
        Vector(
            mechanism: .sha256,
            clientFinal: "c=biws,r=\(nonce),p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="),
        Vector(
            mechanism: .sha512,
            clientFinal:
                "c=biws,r=\(nonce),p=gMGXRcevScNtxZ6/8lQYpGtnsNAc3mGcmNomv+xnoOMw+3R2xNJdMNnzMlTN8PPC6wdp6dybEmDYXYTxwnYPJQ==",
            serverFinal:
                "v=ZQnYEgWQMFmmsM8aQMF0nDDCy/AgCzkwk8CmMZYcMg0vSVlKDanekLtifDSeVGT4+5ZxXnJq199RVG2rR7N7Zw=="),
    ]

    static func credential(_ mechanism: ScramMechanism, password: String = "pencil") -> ScramCredential {
        let formulas = ScramFormulas(mechanism, hashing: LibCrypto())
        let salted = formulas.saltedPassword(password, salt: salt, iterations: 4096)
        return formulas.credential(saltedPassword: salted, salt: salt, iterations: 4096)
    }

    @Test(arguments: vectors) func clientMatchesTheVector(_ vector: Vector) throws {
        var client = ScramClientExchange(
            mechanism: vector.mechanism, username: "user", password: "pencil", clientNonce: Self.clientNonce,
            hashing: LibCrypto())
        #expect(String(decoding: client.clientFirstMessage, as: UTF8.self) == "n,,n=user,r=\(Self.clientNonce)")
        let final = try client.serverFirstReceived(Array(Self.serverFirst.utf8))
        #expect(String(decoding: final, as: UTF8.self) == vector.clientFinal)
        try client.serverFinalReceived(Array(vector.serverFinal.utf8))
    }

    @Test(arguments: vectors) func serverMatchesTheVector(_ vector: Vector) {
        var server = ScramServerExchange(mechanism: vector.mechanism, hashing: LibCrypto())
        let stored = Self.credential(vector.mechanism)
        let first = server.received(
            Array("n,,n=user,r=\(Self.clientNonce)".utf8), serverNonce: Self.serverNonce,
            credential: { $0 == "user" ? stored : nil })
        #expect(first == .challenge(Array(Self.serverFirst.utf8)))
        let final = server.received(Array(vector.clientFinal.utf8), serverNonce: "unused", credential: { _ in nil })
        #expect(final == .authenticated(user: "user", serverFinal: Array(vector.serverFinal.utf8)))
        #expect(server.isFinished)
    }

    @Test(arguments: ScramMechanism.allCases) func wrongPasswordFailsTheProof(_ mechanism: ScramMechanism) throws {
        var client = ScramClientExchange(
            mechanism: mechanism, username: "user", password: "pencil2", clientNonce: "abc", hashing: LibCrypto())
        var server = ScramServerExchange(mechanism: mechanism, hashing: LibCrypto())
        let stored = Self.credential(mechanism)
        guard case .challenge(let challenge) = server.received(client.clientFirstMessage, serverNonce: "xyz", credential: { _ in stored })
        else { Issue.record("no challenge"); return }
        let final = try client.serverFirstReceived(challenge)
        #expect(server.received(final, serverNonce: "", credential: { _ in stored }) == .fail(.invalidProof(user: "user")))
    }

    @Test func aServerThatDoesNotKnowTheCredentialIsCaught() throws {
        var client = ScramClientExchange(
            mechanism: .sha256, username: "user", password: "pencil", clientNonce: Self.clientNonce, hashing: LibCrypto())
        _ = try client.serverFirstReceived(Array(Self.serverFirst.utf8))
        #expect(throws: ScramClientExchange.Failure.invalidServerSignature) {
            try client.serverFinalReceived(Array("v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".utf8))
        }
    }

    @Test func unknownUserFails() {
        var server = ScramServerExchange(mechanism: .sha512, hashing: LibCrypto())
        #expect(server.received(Array("n,,n=nobody,r=abc".utf8), serverNonce: "x", credential: { _ in nil }) == .fail(.unknownUser("nobody")))
        #expect(server.isFinished)
    }

    @Test func escapedNamesAreUnescaped() {
        var server = ScramServerExchange(mechanism: .sha256, hashing: LibCrypto())
        var asked: String?
        _ = server.received(Array("n,,n=a=2Cb=3Dc,r=abc".utf8), serverNonce: "x", credential: { asked = $0; return nil })
        #expect(asked == "a,b=c")
        #expect(ScramMessage.escape(username: "a,b=c") == "a=2Cb=3Dc")
        #expect(ScramMessage.unescape(saslName: "a=2Xb") == nil)
    }

    @Test func channelBindingExtensionsAndForeignAuthorizationIdsAreRefused() {
        let stored = Self.credential(.sha256)
        func first(_ message: String) -> ScramServerExchange.Action {
            var server = ScramServerExchange(mechanism: .sha256, hashing: LibCrypto())
            return server.received(Array(message.utf8), serverNonce: "x", credential: { $0 == "user" ? stored : nil })
        }
        #expect(first("p=tls-unique,,n=user,r=abc") == .fail(.unsupported("channel binding")))
        #expect(first("y,,n=user,r=abc") == .fail(.unsupported("channel binding")))
        #expect(first("n,,n=user,r=abc,tokenauth=true") == .fail(.unsupported("extensions")))
        #expect(first("n,,n=user,r=abc,t=true") == .fail(.unsupported("extensions")))
        #expect(first("n,,m=x,n=user,r=abc") == .fail(.unsupported("mandatory extension")))
        #expect(first("n,a=admin,n=user,r=abc") == .fail(.authorizationIdMismatch("user")))
        if case .challenge = first("n,a=user,n=user,r=abc") {} else { Issue.record("own authzid refused") }
    }

    @Test func weakStoredCredentialsAndWeakServersAreRefused() throws {
        var weak = Self.credential(.sha256)
        weak.iterations = 4095
        var server = ScramServerExchange(mechanism: .sha256, hashing: LibCrypto())
        #expect(
            server.received(Array("n,,n=user,r=abc".utf8), serverNonce: "x", credential: { _ in weak })
                == .fail(.tooFewIterations(user: "user", iterations: 4095)))
        var client = ScramClientExchange(mechanism: .sha256, username: "user", password: "p", clientNonce: "abc", hashing: LibCrypto())
        #expect(throws: ScramClientExchange.Failure.tooFewIterations(1)) {
            try client.serverFirstReceived(Array("r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1".utf8))
        }
    }

    @Test func aReplayedNonceIsRefused() throws {
        let stored = Self.credential(.sha256)
        var server = ScramServerExchange(mechanism: .sha256, hashing: LibCrypto())
        _ = server.received(Array("n,,n=user,r=\(Self.clientNonce)".utf8), serverNonce: "fresh", credential: { _ in stored })
        #expect(server.received(Array(Self.vectors[0].clientFinal.utf8), serverNonce: "", credential: { _ in stored })
            == .fail(.nonceMismatch(user: "user")))
    }

    /// librdkafka 2.0 sends its nonce twice in client-final; Kafka accepts any nonce that ends with
    /// the one it sent, so a proof over that message still authenticates.
    @Test func aClientFinalNonceWithThePrefixRepeatedIsAccepted() throws {
        let formulas = ScramFormulas(.sha256, hashing: LibCrypto())
        let stored = Self.credential(.sha256)
        var server = ScramServerExchange(mechanism: .sha256, hashing: LibCrypto())
        let clientFirstBare = "n=user,r=\(Self.clientNonce)"
        _ = server.received(Array("n,,\(clientFirstBare)".utf8), serverNonce: Self.serverNonce, credential: { _ in stored })
        let withoutProof = "c=biws,r=\(Self.clientNonce)\(Self.nonce)"
        let authMessage = Array("\(clientFirstBare),\(Self.serverFirst),\(withoutProof)".utf8)
        let salted = formulas.saltedPassword("pencil", salt: Self.salt, iterations: 4096)
        let clientKey = formulas.clientKey(saltedPassword: salted)
        let proof = formulas.clientProof(clientKey: clientKey, storedKey: formulas.storedKey(clientKey: clientKey), authMessage: authMessage)
        let action = server.received(Array("\(withoutProof),p=\(Base64.encode(proof))".utf8), serverNonce: "", credential: { _ in stored })
        guard case .authenticated(let user, _) = action else {
            Issue.record("refused: \(action)")
            return
        }
        #expect(user == "user")
    }

    @Test func plainIsVerifiedAgainstTheScramCredential() throws {
        for mechanism in ScramMechanism.allCases {
            let formulas = ScramFormulas(mechanism, hashing: LibCrypto())
            #expect(formulas.verify(password: "pencil", against: Self.credential(mechanism)))
            #expect(!formulas.verify(password: "pencil ", against: Self.credential(mechanism)))
        }
        let plain = try PlainCredentials(parsing: PlainCredentials.message(username: "alice", password: "s3cret"))
        #expect(plain.username == "alice" && plain.password == "s3cret")
        #expect(throws: PlainCredentials.Failure.authorizationIdMismatch) {
            try PlainCredentials(parsing: Array("bob\0alice\0pw".utf8))
        }
        #expect(throws: PlainCredentials.Failure.malformed(tokens: 2)) { try PlainCredentials(parsing: Array("alice\0pw".utf8)) }
    }

    @Test func base64RoundTrips() {
        for length in 0..<10 {
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 200) }
            #expect(Base64.decode(Base64.encode(bytes)[...]) == bytes)
        }
        #expect(Base64.encode(Array("n,,".utf8)) == "biws")
        #expect(Base64.decode("bi=s") == nil)
        #expect(Base64.decode("biw") == nil)
    }
}
