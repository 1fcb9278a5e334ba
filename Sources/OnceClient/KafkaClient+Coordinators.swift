import KafkaProtocol

/// Which kind of coordinator FindCoordinator should locate.
public enum CoordinatorType: Int8, Sendable, Hashable {
    case group = 0
    case transaction = 1
}

extension KafkaClient {
    /// The connection to the coordinator of `key` (a group id or transactional id). Retries
    /// while the cluster reports the coordinator as loading or unavailable, up to `attempts`.
    public func coordinator(for key: String, type: CoordinatorType, attempts: Int = 20) async throws -> KafkaConnection {
        var lastError: KafkaError?
        for attempt in 0..<attempts {
            if attempt > 0 { try await Task.sleep(for: .milliseconds(min(100 * attempt, 1000))) }
            let bootstrap = try await liveBootstrap()
            let version = try bootstrap.version(for: FindCoordinatorRequest.self)
            var request = FindCoordinatorRequest()
            request.keyType = type.rawValue
            let nodeId: Int32
            let error: KafkaError?
            if version >= 4 {
                request.coordinatorKeys = [key]
                let response = try await bootstrap.send(request, version: version)
                guard let entry = response.coordinators.first(where: { $0.key == key }) else {
                    throw KafkaClientError(.unexpectedResponse, "FindCoordinator response does not mention '\(key)'")
                }
                nodeId = entry.nodeId
                error = KafkaError(errorCode: entry.errorCode, message: entry.errorMessage)
            } else {
                request.key = key
                let response = try await bootstrap.send(request, version: version)
                nodeId = response.nodeId
                error = KafkaError(errorCode: response.errorCode, message: response.errorMessage)
            }
            if let error {
                guard error.isRetriable else { throw error }
                lastError = error
                continue
            }
            if (try? await connection(toNode: nodeId)) == nil {
                _ = try await metadata(topics: [])
            }
            return try await connection(toNode: nodeId)
        }
        throw lastError ?? KafkaError(.coordinatorNotAvailable)
    }
}
