import KafkaProtocol
import NIOCore
import OnceStorage

/// DeleteTopics and DescribeConfigs: topic administration (CreateTopics is in Broker+CreateTopics).
extension Broker {
    /// Runs on the topic-administration queue: removing a big topic's directories takes seconds
    /// that no event loop serving other connections should spend.
    func deleteTopics(_ req: DeleteTopicsRequest, _ request: Request) -> EventLoopFuture<DeleteTopicsResponse> {
        let promise = request.eventLoop.makePromise(of: DeleteTopicsResponse.self)
        TopicAdministrationQueue.queue.async {
            promise.succeed(self.deleteTopicsNow(req, request))
        }
        return promise.futureResult
    }

    private func deleteTopicsNow(_ req: DeleteTopicsRequest, _ request: Request) -> DeleteTopicsResponse {
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

    func describeConfigs(_ req: DescribeConfigsRequest, _ request: Request) -> DescribeConfigsResponse {
        var response = DescribeConfigsResponse()
        response.results = req.resources.map { resource in
            var result = DescribeConfigsResponse.DescribeConfigsResult()
            result.resourceType = resource.resourceType
            result.resourceName = resource.resourceName
            let entries: [TopicConfig.Entry]
            let overrideSource: Int8
            switch resource.resourceType {
            case ConfigResourceType.topic:
                guard let meta = storage.topic(named: resource.resourceName) else {
                    result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                    result.errorMessage = "topic '\(resource.resourceName)' does not exist"
                    return result
                }
                entries = Self.topicConfig(meta.configs).entries
                overrideSource = ConfigSource.topicConfig
            case ConfigResourceType.broker:
                guard resource.resourceName.isEmpty || resource.resourceName == String(config.nodeId) else {
                    result.errorCode = ErrorCode.invalidRequest.rawValue
                    result.errorMessage = "this is broker \(config.nodeId), not '\(resource.resourceName)'"
                    return result
                }
                entries = brokerConfigEntries()
                overrideSource = ConfigSource.staticBroker
            default:
                result.errorCode = ErrorCode.invalidRequest.rawValue
                result.errorMessage = "resource type \(resource.resourceType) is not supported"
                return result
            }
            // Null asks for every config; so does an empty list, as Kafka treats it.
            let wanted = resource.configurationKeys.flatMap { $0.isEmpty ? nil : Set($0) }
            result.configs = entries.filter { wanted?.contains($0.name) ?? true }.map { e in
                var c = DescribeConfigsResponse.DescribeConfigsResourceResult()
                c.name = e.name
                c.value = e.value
                c.readOnly = resource.resourceType == ConfigResourceType.broker
                c.isDefault = e.isDefault
                c.configSource = e.isDefault ? ConfigSource.defaultConfig : overrideSource
                if req.includeSynonyms {
                    var s = DescribeConfigsResponse.DescribeConfigsSynonym()
                    s.name = e.name
                    s.value = e.value
                    s.source = c.configSource
                    c.synonyms = [s]
                }
                return c
            }
            return result
        }
        return response
    }

    /// The broker settings a client may ask about, under Kafka's names.
    private func brokerConfigEntries() -> [TopicConfig.Entry] {
        let flush: String
        switch config.flushPolicy {
        case .none: flush = "none"
        case .interval(let ms): flush = "interval:\(ms)"
        case .always: flush = "always"
        }
        return [
            .init(name: "advertised.listeners", value: "PLAINTEXT://\(config.advertisedAddress)", isDefault: config.advertised == nil),
            .init(name: "auto.create.topics.enable", value: String(config.autoCreateTopics), isDefault: config.autoCreateTopics),
            .init(name: "broker.id", value: String(config.nodeId), isDefault: false),
            .init(name: "listeners", value: "PLAINTEXT://\(config.listen)", isDefault: false),
            .init(name: "log.dirs", value: config.dataDirectory, isDefault: false),
            .init(name: "log.retention.check.interval.ms", value: String(config.retentionCheckIntervalMs), isDefault: config.retentionCheckIntervalMs == 300_000),
            .init(name: "num.partitions", value: String(config.defaultPartitions), isDefault: config.defaultPartitions == 1),
            .init(name: "once.flush.policy", value: flush, isDefault: config.flushPolicy == .none),
            .init(name: "socket.request.max.bytes", value: String(config.maxRequestSize), isDefault: config.maxRequestSize == 100 * 1024 * 1024),
        ]
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
        case StorageError.offsetOutOfRange(let requested, let start, let end):
            return (.offsetOutOfRange, "offset \(requested) is outside [\(start), \(end)]")
        default:
            logger.error("storage failure", metadata: ["error": "\(error)"])
            return (.kafkaStorageError, "storage failure: \(error)")
        }
    }
}

/// DescribeConfigs resource types.
enum ConfigResourceType {
    static let topic: Int8 = 2
    static let broker: Int8 = 4
}

/// DescribeConfigs/CreateTopics config sources.
enum ConfigSource {
    static let topicConfig: Int8 = 1
    static let staticBroker: Int8 = 4
    static let defaultConfig: Int8 = 5
}
