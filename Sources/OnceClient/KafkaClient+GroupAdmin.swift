import KafkaProtocol

extension KafkaClient {
    /// Commits offsets for a group from outside it (generation -1, no member id), as Kafka's
    /// kafka-consumer-groups does for --reset-offsets. The coordinator accepts this only while
    /// the group has no members; otherwise it answers UNKNOWN_MEMBER_ID, which is thrown.
    public func commitOffsets(group groupId: String, _ offsets: [TopicPartition: Int64]) async throws {
        guard !offsets.isEmpty else { return }
        let connection = try await coordinator(for: groupId, type: .group)
        var request = OffsetCommitRequest()
        request.groupId = groupId
        request.generationIdOrMemberEpoch = -1
        request.memberId = ""
        request.topics = Dictionary(grouping: offsets, by: \.key.topic).sorted { $0.key < $1.key }.map { topic, entries in
            var t = OffsetCommitRequest.OffsetCommitRequestTopic()
            t.name = topic
            t.partitions = entries.sorted { $0.key.partition < $1.key.partition }.map {
                var p = OffsetCommitRequest.OffsetCommitRequestPartition()
                p.partitionIndex = $0.key.partition
                p.committedOffset = $0.value
                return p
            }
            return t
        }
        let response = try await connection.send(request)
        for topic in response.topics {
            for partition in topic.partitions {
                if let error = KafkaError(errorCode: partition.errorCode) {
                    throw KafkaError(error.code, message: "committing \(topic.name)-\(partition.partitionIndex) for group '\(groupId)'")
                }
            }
        }
    }

    /// Deletes a group and its committed offsets. Kafka refuses a group with members
    /// (NON_EMPTY_GROUP) and an unknown one (GROUP_ID_NOT_FOUND); both are thrown.
    public func deleteGroup(_ groupId: String) async throws {
        let connection = try await coordinator(for: groupId, type: .group)
        var request = DeleteGroupsRequest()
        request.groupsNames = [groupId]
        let response = try await connection.send(request)
        guard let result = response.results.first(where: { $0.groupId == groupId }) else {
            throw KafkaClientError(.unexpectedResponse, "DeleteGroups response does not mention '\(groupId)'")
        }
        if let error = KafkaError(errorCode: result.errorCode) { throw error }
    }

    /// Deletes a group's committed offsets for some partitions (KIP-496). Kafka refuses offsets
    /// of a topic the group is subscribed to (GROUP_SUBSCRIBED_TO_TOPIC), per partition.
    public func deleteOffsets(group groupId: String, _ partitions: [TopicPartition]) async throws {
        guard !partitions.isEmpty else { return }
        let connection = try await coordinator(for: groupId, type: .group)
        var request = OffsetDeleteRequest()
        request.groupId = groupId
        request.topics = Dictionary(grouping: partitions, by: \.topic).sorted { $0.key < $1.key }.map { topic, tps in
            var t = OffsetDeleteRequest.OffsetDeleteRequestTopic()
            t.name = topic
            t.partitions = tps.map(\.partition).sorted().map {
                var p = OffsetDeleteRequest.OffsetDeleteRequestPartition()
                p.partitionIndex = $0
                return p
            }
            return t
        }
        let response = try await connection.send(request)
        if let error = KafkaError(errorCode: response.errorCode) { throw error }
        for topic in response.topics {
            for partition in topic.partitions {
                if let error = KafkaError(errorCode: partition.errorCode) {
                    throw KafkaError(error.code, message: "deleting the offset of \(topic.name)-\(partition.partitionIndex)")
                }
            }
        }
    }
}
