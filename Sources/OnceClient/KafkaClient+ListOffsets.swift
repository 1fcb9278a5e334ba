import KafkaProtocol

extension KafkaClient {
    /// Looks up one offset per partition from the partitions' leaders. A partition-level error
    /// throws, naming the partition.
    ///
    /// For `.timestamp` with no record at or after it, Kafka answers -1.
    public func listOffsets(
        _ specs: [TopicPartition: OffsetSpec], isolation: IsolationLevel = .readUncommitted
    ) async throws -> [TopicPartition: Int64] {
        let byLeader = try await leaders(for: specs.keys)
        var requests: [(KafkaConnection, ListOffsetsRequest)] = []
        for (leader, partitions) in byLeader {
            var request = ListOffsetsRequest()
            request.replicaId = -1
            request.isolationLevel = isolation.rawValue
            request.timeoutMs = configuration.requestTimeout.milliseconds
            request.topics = Dictionary(grouping: partitions, by: \.topic).map { topic, partitions in
                var listTopic = ListOffsetsRequest.ListOffsetsTopic()
                listTopic.name = topic
                listTopic.partitions = partitions.map {
                    var partition = ListOffsetsRequest.ListOffsetsPartition()
                    partition.partitionIndex = $0.partition
                    partition.timestamp = specs[$0]!.wireValue
                    return partition
                }
                return listTopic
            }
            do {
                requests.append((try await connection(toNode: leader), request))
            } catch {
                forgetLeaders(of: partitions)
                throw error
            }
        }
        let responses = try await withThrowingTaskGroup(of: ListOffsetsResponse.self) { group in
            for (connection, request) in requests {
                group.addTask { try await connection.send(request) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        var offsets: [TopicPartition: Int64] = [:]
        for response in responses {
            for topic in response.topics {
                for partition in topic.partitions {
                    let tp = TopicPartition(topic.name, partition.partitionIndex)
                    if let error = KafkaError(errorCode: partition.errorCode) {
                        if Self.leaderMoved(partition.errorCode) { forgetLeaders(of: [tp]) }
                        throw KafkaError(error.code, message: "listing offsets of \(tp)")
                    }
                    offsets[tp] = partition.offset
                }
            }
        }
        for tp in specs.keys where offsets[tp] == nil {
            throw KafkaClientError(.unexpectedResponse, "ListOffsets response does not mention \(tp)")
        }
        return offsets
    }
}
