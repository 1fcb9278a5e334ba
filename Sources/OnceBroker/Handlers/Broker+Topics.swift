import KafkaProtocol
import OnceStorage

/// CreateTopics and DeleteTopics: topic administration.
extension Broker {
    func createTopics(_ req: CreateTopicsRequest, _ request: Request) -> CreateTopicsResponse {
        var response = CreateTopicsResponse()
        response.topics = req.topics.map { t in
            var result = CreateTopicsResponse.CreatableTopicResult()
            result.name = t.name
            // A manual assignment decides the partition count: one entry per partition.
            let partitions = !t.assignments.isEmpty
                ? Int32(t.assignments.count) : t.numPartitions == -1 ? config.defaultPartitions : t.numPartitions
            var configs: [String: String] = [:]
            for c in t.configs { if let v = c.value { configs[c.name] = v } }
            if let (code, message) = assignmentRefusal(t) {
                result.errorCode = code.rawValue
                result.errorMessage = message
            } else if partitions <= 0 {
                result.errorCode = ErrorCode.invalidPartitions.rawValue
                result.errorMessage = "number of partitions must be positive"
            } else if t.replicationFactor != -1 && t.replicationFactor != 1 && t.assignments.isEmpty {
                result.errorCode = ErrorCode.invalidReplicationFactor.rawValue
                result.errorMessage = "replication factor \(t.replicationFactor) is larger than the 1 available broker"
            } else if storage.topic(named: t.name) != nil {
                result.errorCode = ErrorCode.topicAlreadyExists.rawValue
                result.errorMessage = "topic '\(t.name)' already exists"
            } else if let problem = TopicName.validationError(t.name) {
                result.errorCode = ErrorCode.invalidTopicException.rawValue
                result.errorMessage = problem
            } else if let problem = Self.configProblem(configs) {
                result.errorCode = ErrorCode.invalidConfig.rawValue
                result.errorMessage = problem
            } else if !req.validateOnly {
                do {
                    let meta = try storage.createTopic(name: t.name, partitions: partitions, configs: configs)
                    result.topicId = meta.id
                    logger.info("created topic", metadata: ["topic": "\(t.name)", "partitions": "\(partitions)"])
                } catch {
                    let (code, message) = errorCode(for: error)
                    result.errorCode = code.rawValue
                    result.errorMessage = message
                }
            }
            if result.errorCode == 0 {
                result.numPartitions = partitions
                result.replicationFactor = 1
                result.configs = Self.topicConfig(configs).entries.map { e in
                    var c = CreateTopicsResponse.CreatableTopicConfigs()
                    c.name = e.name
                    c.value = e.value
                    c.configSource = e.isDefault ? ConfigSource.defaultConfig : ConfigSource.topicConfig
                    return c
                }
            } else {
                metrics.error(.createTopics, ErrorCode(result.errorCode))
            }
            return result
        }
        return response
    }

    /// Kafka's checks of a manual replica assignment, in its order and words (KRaft's
    /// ReplicationControlManager): both counts left at -1, no partition twice, every list
    /// placeable and as long as the first, and the partitions exactly 0..<n.
    private func assignmentRefusal(_ t: CreateTopicsRequest.CreatableTopic) -> (ErrorCode, String)? {
        guard !t.assignments.isEmpty else { return nil }
        if t.replicationFactor != -1 {
            return (.invalidRequest, "A manual partition assignment was specified, but replication factor was not set to -1.")
        }
        if t.numPartitions != -1 {
            return (.invalidRequest, "A manual partition assignment was specified, but numPartitions was not set to -1.")
        }
        var indexes: Set<Int32> = []
        var replicationFactor: Int?
        for assignment in t.assignments {
            guard indexes.insert(assignment.partitionIndex).inserted else {
                return (.invalidReplicaAssignment, "Found multiple manual partition assignments for partition \(assignment.partitionIndex)")
            }
            if let problem = replicaAssignmentProblem(assignment.brokerIds, replicationFactor: replicationFactor) {
                return (.invalidReplicaAssignment, problem)
            }
            replicationFactor = assignment.brokerIds.count
        }
        if indexes != Set(0..<Int32(t.assignments.count)) {
            return (.invalidReplicaAssignment, "partitions should be a consecutive 0-based integer sequence")
        }
        return nil
    }

    func deleteTopics(_ req: DeleteTopicsRequest, _ request: Request) -> DeleteTopicsResponse {
        // v0-5 name topics; v6 names them or gives their ids.
        let targets: [(name: String?, id: KafkaUUID)] =
            request.version >= 6 ? req.topics.map { ($0.name, $0.topicId) } : req.topicNames.map { ($0, .zero) }
        var response = DeleteTopicsResponse()
        response.responses = targets.map { target in
            var result = DeleteTopicsResponse.DeletableTopicResult()
            result.name = target.name
            result.topicId = target.id
            let meta = target.name.flatMap { storage.topic(named: $0) }
                ?? storage.topics().first { $0.id == target.id && target.id != .zero }
            guard let meta else {
                let code: ErrorCode = target.name == nil ? .unknownTopicId : .unknownTopicOrPartition
                result.errorCode = code.rawValue
                metrics.error(.deleteTopics, code)
                return result
            }
            result.name = meta.name
            result.topicId = meta.id
            do {
                try storage.deleteTopic(name: meta.name)
                producers.topicDeleted(meta)
                groups.topicDeleted(meta.name)
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
        default:
            logger.error("storage failure", metadata: ["error": "\(error)"])
            return (.kafkaStorageError, "storage failure: \(error)")
        }
    }
}
