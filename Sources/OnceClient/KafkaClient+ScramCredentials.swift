import KafkaProtocol
import OnceCore
import OnceCrypto

/// A user's SCRAM credential as DescribeUserScramCredentials reports it: the mechanism and the
/// iteration count, never key material.
public struct ScramCredentialInfo: Sendable, Hashable {
    public var mechanism: ClientSASL.Mechanism
    public var iterations: Int
}

extension KafkaClient {
    /// Every user's SCRAM credentials (no names), or the named users'. A named user without any
    /// comes back as a RESOURCE_NOT_FOUND `KafkaError` in its entry.
    public func describeUserScramCredentials(
        users: [String] = []
    ) async throws -> [(user: String, result: Result<[ScramCredentialInfo], KafkaError>)] {
        var request = DescribeUserScramCredentialsRequest()
        request.users = users.isEmpty ? nil : users.map {
            var name = DescribeUserScramCredentialsRequest.UserName()
            name.name = $0
            return name
        }
        let response = try await controllerConnection().send(request)
        if let error = KafkaError(errorCode: response.errorCode, message: response.errorMessage) { throw error }
        return response.results.map { result in
            if let error = KafkaError(errorCode: result.errorCode, message: result.errorMessage) {
                return (result.user, .failure(error))
            }
            let infos = result.credentialInfos.compactMap { info -> ScramCredentialInfo? in
                guard let mechanism = ScramMechanism(kafkaType: info.mechanism) else { return nil }
                return ScramCredentialInfo(mechanism: .init(mechanism), iterations: Int(info.iterations))
            }
            return (result.user, .success(infos))
        }
    }

    /// Sets a user's SCRAM credential for one mechanism. The password never leaves this process:
    /// the salt is drawn and the salted password computed here, as KIP-554 asks of clients.
    public func upsertUserScramCredential(
        user: String, mechanism: ClientSASL.Mechanism, password: String, iterations: Int = ScramMechanism.minIterations
    ) async throws {
        guard let scram = mechanism.scram else {
            throw KafkaUsageError(.notAScramMechanism, "SCRAM credentials are for SCRAM-SHA-256 or SCRAM-SHA-512, not \(mechanism.rawValue)")
        }
        var upsertion = AlterUserScramCredentialsRequest.ScramCredentialUpsertion()
        upsertion.name = user
        upsertion.mechanism = scram.kafkaType
        upsertion.iterations = Int32(clamping: iterations)
        upsertion.salt = LibCrypto.randomBytes(32)
        upsertion.saltedPassword = ScramFormulas(scram, hashing: LibCrypto()).saltedPassword(
            password, salt: upsertion.salt, iterations: iterations)
        var request = AlterUserScramCredentialsRequest()
        request.upsertions = [upsertion]
        try await alterUserScramCredentials(request, user: user)
    }

    /// Removes a user's SCRAM credential for one mechanism; RESOURCE_NOT_FOUND if there is none.
    public func deleteUserScramCredential(user: String, mechanism: ClientSASL.Mechanism) async throws {
        guard let scram = mechanism.scram else {
            throw KafkaUsageError(.notAScramMechanism, "SCRAM credentials are for SCRAM-SHA-256 or SCRAM-SHA-512, not \(mechanism.rawValue)")
        }
        var deletion = AlterUserScramCredentialsRequest.ScramCredentialDeletion()
        deletion.name = user
        deletion.mechanism = scram.kafkaType
        var request = AlterUserScramCredentialsRequest()
        request.deletions = [deletion]
        try await alterUserScramCredentials(request, user: user)
    }

    private func alterUserScramCredentials(_ request: AlterUserScramCredentialsRequest, user: String) async throws {
        let response = try await controllerConnection().send(request)
        guard let result = response.results.first(where: { $0.user == user }) else {
            throw KafkaClientError(.unexpectedResponse, "AlterUserScramCredentials response does not mention '\(user)'")
        }
        if let error = KafkaError(errorCode: result.errorCode, message: result.errorMessage) { throw error }
    }
}

extension ClientSASL.Mechanism {
    var scram: ScramMechanism? {
        switch self {
        case .plain: nil
        case .scramSha256: .sha256
        case .scramSha512: .sha512
        }
    }

    init(_ scram: ScramMechanism) {
        self = scram == .sha256 ? .scramSha256 : .scramSha512
    }
}
