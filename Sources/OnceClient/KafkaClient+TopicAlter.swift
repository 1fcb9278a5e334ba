import KafkaProtocol

extension KafkaClient {
    /// Grows a topic to `count` partitions. Throws `KafkaError` with INVALID_PARTITIONS when the
    /// count is not larger, UNKNOWN_TOPIC_OR_PARTITION and the like.
    public func createPartitions(_ topic: String, count: Int32, timeout: Duration = .seconds(30)) async throws {
        var entry = CreatePartitionsRequest.CreatePartitionsTopic()
        entry.name = topic
        entry.count = count
        entry.assignments = nil
        var request = CreatePartitionsRequest()
        request.topics = [entry]
        request.timeoutMs = timeout.milliseconds
        let response = try await controllerConnection().send(request, brokerWait: timeout)
        guard let result = response.results.first(where: { $0.name == topic }) else {
            throw KafkaClientError(.unexpectedResponse, "CreatePartitions response does not mention '\(topic)'")
        }
        if let error = KafkaError(errorCode: result.errorCode, message: result.errorMessage) { throw error }
        forget(topic: topic)
    }

    /// Sets and removes topic config overrides in one IncrementalAlterConfigs; the others stay.
    /// Throws `KafkaError` with INVALID_CONFIG for an unknown name or a bad value.
    public func alterTopicConfigs(_ topic: String, set: [(name: String, value: String)], delete: [String] = []) async throws {
        var resource = IncrementalAlterConfigsRequest.AlterConfigsResource()
        resource.resourceType = Self.topicResourceType
        resource.resourceName = topic
        resource.configs = set.map { entry in
            var config = IncrementalAlterConfigsRequest.AlterableConfig()
            config.name = entry.name
            config.value = entry.value
            config.configOperation = 0  // SET
            return config
        } + delete.map { name in
            var config = IncrementalAlterConfigsRequest.AlterableConfig()
            config.name = name
            config.value = nil
            config.configOperation = 1  // DELETE
            return config
        }
        var request = IncrementalAlterConfigsRequest()
        request.resources = [resource]
        let response = try await controllerConnection().send(request)
        guard let result = response.responses.first(where: { $0.resourceName == topic }) else {
            throw KafkaClientError(.unexpectedResponse, "IncrementalAlterConfigs response does not mention '\(topic)'")
        }
        if let error = KafkaError(errorCode: result.errorCode, message: result.errorMessage) { throw error }
    }

    /// Deletes every record below `offsets[partition]` (-1: below the high watermark), asking each
    /// partition's leader, and returns each partition's new log start offset. A partition-level
    /// error throws, naming the partition.
    public func deleteRecords(_ topic: String, before offsets: [Int32: Int64], timeout: Duration = .seconds(30)) async throws
        -> [Int32: Int64]
    {
        let byLeader = try await leaders(for: offsets.keys.map { TopicPartition(topic, $0) })
        var starts: [Int32: Int64] = [:]
        for (leader, partitions) in byLeader.sorted(by: { $0.key < $1.key }) {
            var entry = DeleteRecordsRequest.DeleteRecordsTopic()
            entry.name = topic
            entry.partitions = partitions.sorted { $0.partition < $1.partition }.map { tp in
                var p = DeleteRecordsRequest.DeleteRecordsPartition()
                p.partitionIndex = tp.partition
                p.offset = offsets[tp.partition]!
                return p
            }
            var request = DeleteRecordsRequest()
            request.topics = [entry]
            request.timeoutMs = timeout.milliseconds
            let response = try await connection(toNode: leader).send(request, brokerWait: timeout)
            for result in response.topics.first(where: { $0.name == topic })?.partitions ?? [] {
                if let error = KafkaError(errorCode: result.errorCode, message: "\(topic)-\(result.partitionIndex)") { throw error }
                starts[result.partitionIndex] = result.lowWatermark
            }
        }
        return starts
    }
}
