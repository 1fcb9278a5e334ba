import KafkaProtocol

extension KafkaClient {
    /// Creates a topic and returns its id (zero when the broker's version does not report one).
    /// Throws `KafkaError` with TOPIC_ALREADY_EXISTS, INVALID_CONFIG and the like.
    @discardableResult
    public func createTopic(
        _ name: String, partitions: Int32 = 1, replicationFactor: Int16 = 1,
        configs: [(name: String, value: String)] = [], timeout: Duration = .seconds(30)
    ) async throws -> KafkaUUID {
        var topic = CreateTopicsRequest.CreatableTopic()
        topic.name = name
        topic.numPartitions = partitions
        topic.replicationFactor = replicationFactor
        topic.configs = configs.map {
            var config = CreateTopicsRequest.CreatableTopicConfig()
            config.name = $0.name
            config.value = $0.value
            return config
        }
        var request = CreateTopicsRequest()
        request.topics = [topic]
        request.timeoutMs = timeout.milliseconds
        let response = try await controllerConnection().send(request, brokerWait: timeout)
        guard let result = response.topics.first(where: { $0.name == name }) else {
            throw KafkaClientError(.unexpectedResponse, "CreateTopics response does not mention '\(name)'")
        }
        if let error = KafkaError(errorCode: result.errorCode, message: result.errorMessage) { throw error }
        return result.topicId
    }

    /// Deletes a topic by name. Throws UNKNOWN_TOPIC_OR_PARTITION for a topic that does not exist.
    public func deleteTopic(_ name: String, timeout: Duration = .seconds(30)) async throws {
        let connection = try await controllerConnection()
        let version = try connection.version(for: DeleteTopicsRequest.self)
        var request = DeleteTopicsRequest()
        request.timeoutMs = timeout.milliseconds
        if version >= 6 {
            var state = DeleteTopicsRequest.DeleteTopicState()
            state.name = name
            request.topics = [state]
        } else {
            request.topicNames = [name]
        }
        let response = try await connection.send(request, version: version, brokerWait: timeout)
        guard let result = response.responses.first(where: { $0.name == name }) ?? response.responses.first else {
            throw KafkaClientError(.unexpectedResponse, "DeleteTopics response does not mention '\(name)'")
        }
        if let error = KafkaError(errorCode: result.errorCode, message: result.errorMessage) { throw error }
        forget(topic: name)
    }

    /// The configuration of a topic, every entry including defaults.
    public func describeTopicConfigs(_ topic: String) async throws -> [ConfigEntry] {
        var resource = DescribeConfigsRequest.DescribeConfigsResource()
        resource.resourceType = Self.topicResourceType
        resource.resourceName = topic
        resource.configurationKeys = nil
        var request = DescribeConfigsRequest()
        request.resources = [resource]
        let response = try await liveBootstrap().send(request)
        guard let result = response.results.first(where: { $0.resourceName == topic }) else {
            throw KafkaClientError(.unexpectedResponse, "DescribeConfigs response does not mention '\(topic)'")
        }
        if let error = KafkaError(errorCode: result.errorCode, message: result.errorMessage) { throw error }
        return result.configs.map {
            ConfigEntry(
                name: $0.name, value: $0.value, isReadOnly: $0.readOnly, isSensitive: $0.isSensitive,
                source: $0.configSource)
        }.sorted { $0.name < $1.name }
    }

    /// ConfigResource.Type.TOPIC on the wire.
    static let topicResourceType: Int8 = 2
}

extension Duration {
    /// Whole milliseconds, clamped to what an int32 timeout field holds.
    var milliseconds: Int32 {
        let (seconds, attoseconds) = components
        let ms = seconds * 1000 + attoseconds / 1_000_000_000_000_000
        return Int32(clamping: ms)
    }
}
