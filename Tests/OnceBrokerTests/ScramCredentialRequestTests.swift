import KafkaProtocol
import NIOCore
import OnceCore
import OnceCrypto
import OnceStorage
import Testing

@testable import OnceBroker

/// AlterUserScramCredentials / DescribeUserScramCredentials with Kafka's errors, the store's
/// durability, and SASL on a SASL_PLAINTEXT session, all through `Broker.handle`.
@Suite("SCRAM credentials and SASL")
struct ScramCredentialRequestTests {
    static func upsertion(_ name: String, _ mechanism: Int8 = 2, iterations: Int32 = 4096, password: String = "pw")
        -> AlterUserScramCredentialsRequest.ScramCredentialUpsertion
    {
        var upsertion = AlterUserScramCredentialsRequest.ScramCredentialUpsertion()
        upsertion.name = name
        upsertion.mechanism = mechanism
        upsertion.iterations = iterations
        upsertion.salt = Array("salt-of-\(name)".utf8)
        let scram = ScramMechanism(kafkaType: mechanism) ?? .sha512
        upsertion.saltedPassword = ScramFormulas(scram, hashing: LibCrypto()).saltedPassword(
            password, salt: upsertion.salt, iterations: Int(max(1, iterations)))
        return upsertion
    }

    static func deletion(_ name: String, _ mechanism: Int8 = 2) -> AlterUserScramCredentialsRequest.ScramCredentialDeletion {
        var deletion = AlterUserScramCredentialsRequest.ScramCredentialDeletion()
        deletion.name = name
        deletion.mechanism = mechanism
        return deletion
    }

    static func results(_ response: AlterUserScramCredentialsResponse?) -> [String: ErrorCode] {
        Dictionary(uniqueKeysWithValues: (response?.results ?? []).map { ($0.user, ErrorCode($0.errorCode)) })
    }

    @Test func alterAnswersKafkasErrorsPerUser() async throws {
        let h = BrokerHarness()
        var request = AlterUserScramCredentialsRequest()
        request.upsertions = [
            Self.upsertion("alice"), Self.upsertion("weak", iterations: 1000), Self.upsertion("slow", iterations: 20000),
            Self.upsertion("odd", 0), Self.upsertion(""), Self.upsertion("twice"), Self.upsertion("twice", 1),
        ]
        request.deletions = [Self.deletion("nobody")]
        let response = try await h.send(request, version: 0)
        #expect(
            Self.results(response) == [
                "alice": .none, "weak": .unacceptableCredential, "slow": .unacceptableCredential,
                "odd": .unsupportedSaslMechanism, "": .unacceptableCredential, "twice": .duplicateResource,
                "nobody": .resourceNotFound,
            ])
        #expect(h.broker.scramCredentials.users == ["alice"])
        // Only StoredKey and ServerKey are kept, derived as Kafka's controller derives them.
        let stored = try #require(h.broker.scramCredentials.credential(user: "alice", mechanism: .sha512))
        let formulas = ScramFormulas(.sha512, hashing: LibCrypto())
        #expect(formulas.verify(password: "pw", against: stored))
        #expect(!formulas.verify(password: "pw2", against: stored))
    }

    @Test func describeListsMechanismsAndNamesMissingAndDuplicateUsers() async throws {
        let h = BrokerHarness()
        var alter = AlterUserScramCredentialsRequest()
        alter.upsertions = [Self.upsertion("alice", 1, iterations: 8192), Self.upsertion("bob")]
        _ = try await h.send(alter, version: 0)
        var alterAgain = AlterUserScramCredentialsRequest()
        alterAgain.upsertions = [Self.upsertion("alice", 2)]
        _ = try await h.send(alterAgain, version: 0)

        let all = try #require(try await h.send(DescribeUserScramCredentialsRequest(), version: 0))
        #expect(all.results.map(\.user).sorted() == ["alice", "bob"])
        let alice = try #require(all.results.first { $0.user == "alice" })
        #expect(alice.credentialInfos.map { [$0.mechanism, Int8($0.iterations / 4096)] } == [[1, 2], [2, 1]])

        var named = DescribeUserScramCredentialsRequest()
        named.users = ["carol", "bob", "bob"].map {
            var user = DescribeUserScramCredentialsRequest.UserName()
            user.name = $0
            return user
        }
        let answer = try #require(try await h.send(named, version: 0))
        #expect(answer.results.map(\.user) == ["carol", "bob"])
        #expect(answer.results[0].errorCode == ErrorCode.resourceNotFound.rawValue)
        #expect(answer.results[0].errorMessage == "Attempt to describe a user credential that does not exist: carol")
        #expect(answer.results[1].errorCode == ErrorCode.duplicateResource.rawValue)

        var delete = AlterUserScramCredentialsRequest()
        delete.deletions = [Self.deletion("bob")]
        #expect(Self.results(try await h.send(delete, version: 0)) == ["bob": .none])
        #expect(h.broker.scramCredentials.users == ["alice"])
    }

    @Test func credentialsSurviveARestartOnTheSameStorage() async throws {
        let storage = MemoryLogStorage()
        let h = BrokerHarness(storage: storage)
        var alter = AlterUserScramCredentialsRequest()
        alter.upsertions = [Self.upsertion("alice")]
        _ = try await h.send(alter, version: 0)
        let restarted = BrokerHarness(storage: storage)
        #expect(restarted.broker.scramCredentials.credential(user: "alice", mechanism: .sha512) != nil)
        let document = try #require(try storage.readState(named: ScramCredentialStore.documentName))
        #expect(!String(decoding: document, as: UTF8.self).contains("\"pw\""))
    }

    @Test func bootstrapCredentialsParseKafkasForm() throws {
        let parsed = try ScramBootstrapCredential(parsing: "SCRAM-SHA-512=[name=admin,password=\"a,b]c\",iterations=8192]")
        #expect(parsed == ScramBootstrapCredential(mechanism: .sha512, user: "admin", password: "a,b]c", iterations: 8192))
        #expect(throws: ScramBootstrapCredential.ParseError.self) { try ScramBootstrapCredential(parsing: "PLAIN=[name=a,password=b]") }
        #expect(throws: ScramBootstrapCredential.ParseError.self) { try ScramBootstrapCredential(parsing: "SCRAM-SHA-256=[name=a]") }
        #expect(throws: ScramBootstrapCredential.ParseError.self) {
            try ScramBootstrapCredential(parsing: "SCRAM-SHA-256=[name=a,password=b,iterations=10]")
        }
        do {
            _ = try ScramBootstrapCredential(parsing: "SCRAM-SHA-256=[name=a,password=hunter2,colour=red]")
            Issue.record("unknown field accepted")
        } catch {
            #expect(!"\(error)".contains("hunter2"))
        }
    }

    @Test func failuresAreLimitedPerAddressWithinAMinute() {
        let limiter = AuthenticationFailureLimiter(maxFailures: 2)
        limiter.recordFailure("10.0.0.1", nowMs: 0)
        #expect(!limiter.isLimited("10.0.0.1", nowMs: 1))
        limiter.recordFailure("10.0.0.1", nowMs: 1_000)
        #expect(limiter.isLimited("10.0.0.1", nowMs: 1_001))
        #expect(!limiter.isLimited("10.0.0.2", nowMs: 1_001))
        #expect(!limiter.isLimited("10.0.0.1", nowMs: 60_000))
    }

    // SASL on a SASL_PLAINTEXT session.

    static func saslSession() -> ConnectionSession {
        ConnectionSession(listenerName: "SASL_PLAINTEXT", securityProtocol: .saslPlaintext, peerHost: "127.0.0.1")
    }

    static func send<R: KafkaRequest>(_ h: BrokerHarness, _ request: R, version: Int16, session: ConnectionSession) async throws -> R.Response {
        var response = try #require(
            try await h.broker.handle(frame: BrokerHarness.frame(request, version: version), eventLoop: h.eventLoop, session: session).get())
        _ = response.readInteger(as: Int32.self)
        _ = try ResponseHeader(from: &response, version: KafkaHeaderVersions.response(apiKey: R.apiKey, apiVersion: version))
        return try R.Response(from: &response, version: version)
    }

    static func authenticate(_ token: [UInt8]) -> SaslAuthenticateRequest {
        var request = SaslAuthenticateRequest()
        request.authBytes = token
        return request
    }

    @Test func plainAndScramSetThePrincipalAndNothingElseIsServedBefore() async throws {
        let h = BrokerHarness {
            $0.sasl.enabledMechanisms = [.plain, .scramSha256]
            $0.sasl.failedAuthenticationDelayMs = 0
            $0.sasl.bootstrapCredentials = [ScramBootstrapCredential(mechanism: .sha256, user: "alice", password: "pw")]
        }
        let session = Self.saslSession()
        #expect(throws: Broker.ConnectionError.self) {
            try h.broker.handle(frame: BrokerHarness.frame(MetadataRequest(), version: 12), eventLoop: h.eventLoop, session: session)
        }
        var handshake = SaslHandshakeRequest()
        handshake.mechanism = "PLAIN"
        let shaken = try await Self.send(h, handshake, version: 1, session: session)
        #expect(shaken.errorCode == 0 && shaken.mechanisms == ["PLAIN", "SCRAM-SHA-256"])
        let plain = try await Self.send(h, Self.authenticate(PlainCredentials.message(username: "alice", password: "pw")), version: 2, session: session)
        #expect(plain.errorCode == 0)
        #expect(session.principal == KafkaPrincipal(name: "alice"))
        let again = try await Self.send(h, handshake, version: 1, session: session)
        #expect(again.errorCode == ErrorCode.illegalSaslState.rawValue)
        _ = try await Self.send(h, MetadataRequest(), version: 12, session: session)

        let scramSession = Self.saslSession()
        handshake.mechanism = "SCRAM-SHA-256"
        _ = try await Self.send(h, handshake, version: 1, session: scramSession)
        var client = ScramClientExchange(mechanism: .sha256, username: "alice", password: "pw", clientNonce: "nonce", hashing: LibCrypto())
        let first = try await Self.send(h, Self.authenticate(client.clientFirstMessage), version: 1, session: scramSession)
        #expect(first.errorCode == 0 && scramSession.principal == .anonymous)
        let final = try await Self.send(h, Self.authenticate(try client.serverFirstReceived(first.authBytes)), version: 1, session: scramSession)
        #expect(final.errorCode == 0 && final.sessionLifetimeMs == 0)
        try client.serverFinalReceived(final.authBytes)
        #expect(scramSession.principal == KafkaPrincipal(name: "alice"))
    }

    @Test func wrongPasswordsAndDisabledMechanismsFail() async throws {
        let h = BrokerHarness {
            $0.sasl.enabledMechanisms = [.plain]
            $0.sasl.failedAuthenticationDelayMs = 0
            $0.sasl.bootstrapCredentials = [ScramBootstrapCredential(mechanism: .sha512, user: "alice", password: "pw")]
        }
        var handshake = SaslHandshakeRequest()
        handshake.mechanism = "SCRAM-SHA-512"
        let refused = try await Self.send(h, handshake, version: 1, session: Self.saslSession())
        #expect(refused.errorCode == ErrorCode.unsupportedSaslMechanism.rawValue && refused.mechanisms == ["PLAIN"])

        let session = Self.saslSession()
        handshake.mechanism = "PLAIN"
        _ = try await Self.send(h, handshake, version: 1, session: session)
        let wrong = try await Self.send(h, Self.authenticate(PlainCredentials.message(username: "alice", password: "nope")), version: 2, session: session)
        #expect(wrong.errorCode == ErrorCode.saslAuthenticationFailed.rawValue)
        #expect(wrong.errorMessage == "Authentication failed: Invalid username or password")
        #expect(session.principal == .anonymous)
        // A failed connection is done: the next request closes it.
        #expect(throws: Broker.ConnectionError.self) {
            try h.broker.handle(frame: BrokerHarness.frame(handshake, version: 1), eventLoop: h.eventLoop, session: session)
        }
    }
}
