import KafkaProtocol
import NIOCore
import OnceStorage

/// DeleteTopics: topic administration (CreateTopics is in Broker+CreateTopics, DescribeConfigs in
/// Broker+Configs).
extension Broker {
    /// Runs on the administration thread: removing a big topic's directories takes seconds that
    /// no event loop serving other connections should spend.
    func deleteTopics(_ req: DeleteTopicsRequest, _ request: Request) -> EventLoopFuture<DeleteTopicsResponse> {
        administer(on: request.eventLoop) { self.deleteTopicsNow(req, request) }
    }

    private func deleteTopicsNow(_ req: DeleteTopicsRequest, _ request: Request) -> DeleteTopicsResponse {
        // v0-5 name topics; v6 names them or gives their ids.
        let targets: [(name: String?, id: KafkaUUID)] =
            request.version >= 6 ? req.topics.map { ($0.name, $0.topicId) } : req.topicNames.map { ($0, .zero) }
        var response = DeleteTopicsResponse()
        let auth = authorization(request)
        response.responses = targets.map { target in
            var result = DeleteTopicsResponse.DeletableTopicResult()
            result.name = target.name
            result.topicId = target.id
            let meta = target.name.flatMap { storage.topic(named: $0) }
                ?? storage.topics().first { $0.id == target.id && target.id != .zero }
            // Topic DELETE, as Kafka's controller decides it: a name the principal may not DESCRIBE is
            // refused whether it exists or not; a topic found by id is named in the refusal only to
            // a principal that may DESCRIBE it.
            if let name = target.name ?? meta?.name, !auth.allowsTopic(.delete, name) {
                let describable = auth.allowsTopic(.describe, name)
                // Only a principal that may DESCRIBE a name learns that it does not exist.
                if target.name == nil || !describable || meta != nil {
                    if target.name == nil && !describable { result.name = nil }
                    result.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                    metrics.error(.deleteTopics, .topicAuthorizationFailed)
                    return result
                }
            }
            guard let meta else {
                let code: ErrorCode = target.name == nil ? .unknownTopicId : .unknownTopicOrPartition
                result.errorCode = code.rawValue
                metrics.error(.deleteTopics, code)
                return result
            }
            result.name = meta.name
            result.topicId = meta.id
            // The coordinators' logs: deleting one would break every transaction or group until a
            // restart. Kafka's own tools refuse with "is a kafka internal topic"; the broker uses the
            // code it gives for writes to an internal topic.
            guard !InternalTopics.names.contains(meta.name) else {
                result.errorCode = ErrorCode.invalidTopicException.rawValue
                result.errorMessage = "topic '\(meta.name)' is internal and cannot be deleted"
                metrics.error(.deleteTopics, .invalidTopicException)
                return result
            }
            do {
                try storage.deleteTopic(name: meta.name)
                producers.topicDeleted(meta)
                groups.topicDeleted(meta.name)
                metrics.topicDeleted(meta.name)
                logger.info("deleted topic", metadata: ["topic": "\(meta.name)"])
            } catch {
                let (code, message) = errorCode(for: error)
                result.errorCode = code.rawValue
                result.errorMessage = message
            }
            return result
        }
        return response
    }

    /// Why these topic config overrides are invalid, or nil.
    static func configProblem(_ overrides: [String: String]) -> String? {
        do {
            _ = try TopicConfig(overrides: overrides)
            return nil
        } catch StorageError.invalidConfig(let message) {
            return message
        } catch {
            return "\(error)"
        }
    }

    /// A stored topic's effective config. Stored overrides were validated when the topic was created.
    static func topicConfig(_ overrides: [String: String]) -> TopicConfig {
        (try? TopicConfig(overrides: overrides)) ?? TopicConfig()
    }

    /// Maps a storage failure to the code and message a client sees.
    func errorCode(for error: any Error) -> (ErrorCode, String) {
        switch error {
        case StorageError.topicExists(let name): return (.topicAlreadyExists, "topic '\(name)' already exists")
        case StorageError.unknownTopic(let name): return (.unknownTopicOrPartition, "topic '\(name)' does not exist")
        case StorageError.invalidConfig(let message): return (.invalidConfig, message)
        case StorageError.invalidPartitions(let message): return (.invalidPartitions, message)
        case StorageError.offsetOutOfRange(let requested, let start, let end):
            return (.offsetOutOfRange, "offset \(requested) is outside [\(start), \(end)]")
        case StorageError.notLeader(let message): return (.notLeaderOrFollower, message)
        case StorageError.outcomeUnknown(let message): return (.requestTimedOut, message)
        default:
            logger.error("storage failure", metadata: ["error": "\(error)"])
            return (.kafkaStorageError, "storage failure: \(error)")
        }
    }
}
