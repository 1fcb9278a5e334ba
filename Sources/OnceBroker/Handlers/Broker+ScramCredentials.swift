import KafkaProtocol
import OnceCore

/// DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554), with the errors and
/// messages of Kafka's controller (ScramImage.describe, ScramControlManager.alterCredentials).
/// Kafka authorizes both on the Cluster resource: DESCRIBE and ALTER.
extension Broker {
    func describeUserScramCredentials(
        _ req: DescribeUserScramCredentialsRequest, _ request: Request
    ) -> DescribeUserScramCredentialsResponse {
        var response = DescribeUserScramCredentialsResponse()
        response.errorMessage = nil
        guard authorization(request).allowsCluster(.describe) else {
            response.errorCode = ErrorCode.clusterAuthorizationFailed.rawValue
            response.errorMessage = "Cluster authorization failed."
            return response
        }
        // Null or empty asks for every user; a user named twice is answered once, with an error.
        var seen: [String: Bool] = [:]
        var order: [String] = []
        for name in (req.users?.isEmpty == false ? req.users!.map(\.name) : scramCredentials.users) {
            if seen[name] == nil { order.append(name) }
            seen[name] = seen[name] != nil
        }
        response.results = order.map { user in
            var result = DescribeUserScramCredentialsResponse.DescribeUserScramCredentialsResult()
            result.user = user
            result.errorMessage = nil
            if seen[user] == true {
                result.errorCode = ErrorCode.duplicateResource.rawValue
                result.errorMessage = "Cannot describe SCRAM credentials for the same user twice in a single request: \(user)"
                return result
            }
            let credentials = scramCredentials.credentials(user: user)
            guard !credentials.isEmpty else {
                result.errorCode = ErrorCode.resourceNotFound.rawValue
                result.errorMessage = "Attempt to describe a user credential that does not exist: \(user)"
                return result
            }
            result.credentialInfos = ScramMechanism.allCases.compactMap { mechanism in
                guard let credential = credentials[mechanism] else { return nil }
                var info = DescribeUserScramCredentialsResponse.CredentialInfo()
                info.mechanism = mechanism.kafkaType
                info.iterations = Int32(credential.iterations)
                return info
            }
            return result
        }
        return response
    }

    /// A user appearing twice anywhere in the request fails whole, as in Kafka; the changes that
    /// pass validation are made durable together before anyone is told they succeeded.
    func alterUserScramCredentials(
        _ req: AlterUserScramCredentialsRequest, _ request: Request
    ) -> AlterUserScramCredentialsResponse {
        guard authorization(request).allowsCluster(.alter) else {
            // Every user the request names gets the refusal, as Kafka's error response does.
            var names: [String] = []
            for name in req.deletions.map(\.name) + req.upsertions.map(\.name) where !names.contains(name) { names.append(name) }
            var refused = AlterUserScramCredentialsResponse()
            refused.results = names.map { name in
                var result = AlterUserScramCredentialsResponse.AlterUserScramCredentialsResult()
                result.user = name
                result.errorCode = ErrorCode.clusterAuthorizationFailed.rawValue
                result.errorMessage = "Cluster authorization failed."
                return result
            }
            return refused
        }
        var errors: [String: (ErrorCode, String)] = [:]
        var changes: [String: ScramCredentialStore.Change] = [:]
        var order: [String] = []
        func note(_ user: String) { if !order.contains(user) { order.append(user) } }
        func duplicate(_ user: String) -> Bool {
            guard changes.removeValue(forKey: user) != nil else { return false }
            errors[user] = (.duplicateResource, "A user credential cannot be altered twice in the same request")
            return true
        }
        for deletion in req.deletions {
            note(deletion.name)
            guard errors[deletion.name] == nil, !duplicate(deletion.name) else { continue }
            switch Self.validate(user: deletion.name, mechanism: deletion.mechanism) {
            case .failure(let error): errors[deletion.name] = (error.code, error.message)
            case .success(let mechanism):
                guard scramCredentials.credential(user: deletion.name, mechanism: mechanism) != nil else {
                    errors[deletion.name] = (.resourceNotFound, "Attempt to delete a user credential that does not exist")
                    continue
                }
                changes[deletion.name] = .delete(user: deletion.name, mechanism: mechanism)
            }
        }
        for upsertion in req.upsertions {
            note(upsertion.name)
            guard errors[upsertion.name] == nil, !duplicate(upsertion.name) else { continue }
            switch Self.validate(user: upsertion.name, mechanism: upsertion.mechanism) {
            case .failure(let error): errors[upsertion.name] = (error.code, error.message)
            case .success(let mechanism):
                if upsertion.iterations < ScramMechanism.minIterations {
                    errors[upsertion.name] = (.unacceptableCredential, "Too few iterations")
                } else if upsertion.iterations > ScramMechanism.maxIterations {
                    errors[upsertion.name] = (.unacceptableCredential, "Too many iterations")
                } else if upsertion.salt.isEmpty || upsertion.saltedPassword.count != mechanism.digestLength {
                    errors[upsertion.name] = (.unacceptableCredential, "Salt and salted password must be set")
                } else {
                    let credential = ScramFormulas(mechanism, hashing: cryptography).credential(
                        saltedPassword: upsertion.saltedPassword, salt: upsertion.salt,
                        iterations: Int(upsertion.iterations))
                    changes[upsertion.name] = .upsert(user: upsertion.name, mechanism: mechanism, credential)
                }
            }
        }
        var storageFailed = false
        let applied = order.compactMap { changes[$0] }
        do {
            try scramCredentials.apply(applied)
            if !applied.isEmpty {
                logger.info("SCRAM credentials altered", metadata: ["users": "\(order.filter { changes[$0] != nil })"])
            }
        } catch {
            logger.error("storing SCRAM credentials failed", metadata: ["error": "\(error)"])
            storageFailed = true
        }
        var response = AlterUserScramCredentialsResponse()
        response.results = order.map { user in
            var result = AlterUserScramCredentialsResponse.AlterUserScramCredentialsResult()
            result.user = user
            result.errorMessage = nil
            if let (code, message) = errors[user] {
                result.errorCode = code.rawValue
                result.errorMessage = message
                metrics.error(.alterUserScramCredentials, code)
            } else if storageFailed {
                result.errorCode = ErrorCode.kafkaStorageError.rawValue
                result.errorMessage = "The credential could not be stored"
            }
            return result
        }
        return response
    }

    private static func validate(user: String, mechanism: Int8) -> Result<ScramMechanism, ValidationError> {
        guard !user.isEmpty else { return .failure(ValidationError(.unacceptableCredential, "Username must not be empty")) }
        guard let mechanism = ScramMechanism(kafkaType: mechanism) else {
            return .failure(ValidationError(.unsupportedSaslMechanism, "Unknown SCRAM mechanism"))
        }
        return .success(mechanism)
    }

    private struct ValidationError: Error {
        var code: ErrorCode
        var message: String
        init(_ code: ErrorCode, _ message: String) {
            self.code = code
            self.message = message
        }
    }
}
