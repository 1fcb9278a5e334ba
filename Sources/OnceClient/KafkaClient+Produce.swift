import KafkaProtocol
import NIOCore

extension KafkaClient {
    /// Sends one encoded record batch per partition, each to its partition's leader, and returns
    /// one result per partition. Partition-level failures come back in `ProduceResult.error`;
    /// a failure to reach a broker throws.
    ///
    /// With `acks` 0 the brokers do not answer, so results carry offset -1 and no error.
    public func produce(
        _ batches: [TopicPartition: ByteBuffer], acks: Int16 = -1, timeout: Duration = .seconds(30),
        transactionalId: String? = nil
    ) async throws -> [TopicPartition: ProduceResult] {
        let byLeader = try await leaders(for: batches.keys)
        var requests: [(KafkaConnection, Int16, ProduceRequest)] = []
        for (leader, partitions) in byLeader {
            let connection = try await connection(toNode: leader)
            let version = try connection.version(for: ProduceRequest.self)
            let ids = version >= 13 ? try await resolveTopicIds(Set(partitions.map(\.topic))) : [:]
            var request = ProduceRequest()
            request.transactionalId = transactionalId
            request.acks = acks
            request.timeoutMs = timeout.milliseconds
            request.topicData = Dictionary(grouping: partitions, by: \.topic).map { topic, partitions in
                var data = ProduceRequest.TopicProduceData()
                data.name = topic
                data.topicId = ids[topic] ?? .zero
                data.partitionData = partitions.map {
                    var partition = ProduceRequest.PartitionProduceData()
                    partition.index = $0.partition
                    partition.records = batches[$0]
                    return partition
                }
                return data
            }
            requests.append((connection, version, request))
        }

        if acks == 0 {
            for (connection, version, request) in requests {
                try await connection.sendWithoutResponse(request, version: version)
            }
            return batches.keys.reduce(into: [:]) {
                $0[$1] = ProduceResult(topicPartition: $1, baseOffset: -1, logAppendTime: -1, logStartOffset: -1)
            }
        }

        let responses = try await withThrowingTaskGroup(of: ProduceResponse.self) { group in
            for (connection, version, request) in requests {
                group.addTask { try await connection.send(request, version: version, brokerWait: timeout) }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        var results: [TopicPartition: ProduceResult] = [:]
        for response in responses {
            for topic in response.responses {
                let name = topic.topicId != .zero ? (topicName(topic.topicId) ?? topic.name) : topic.name
                for partition in topic.partitionResponses {
                    let tp = TopicPartition(name, partition.index)
                    results[tp] = ProduceResult(
                        topicPartition: tp, baseOffset: partition.baseOffset,
                        logAppendTime: partition.logAppendTimeMs, logStartOffset: partition.logStartOffset,
                        error: KafkaError(errorCode: partition.errorCode, message: partition.errorMessage))
                }
            }
        }
        for tp in batches.keys where results[tp] == nil {
            throw KafkaClientError(.unexpectedResponse, "Produce response does not mention \(tp)")
        }
        return results
    }
}
