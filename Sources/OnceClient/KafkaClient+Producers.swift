import KafkaProtocol

/// One producer a partition leader knows about (KIP-664 DescribeProducers).
public struct ActiveProducer: Sendable, Hashable {
    public var producerId: Int64
    public var producerEpoch: Int32
    public var lastSequence: Int32
    public var lastTimestamp: Int64
    public var coordinatorEpoch: Int32
    /// First offset of the producer's open transaction, or -1.
    public var currentTransactionStartOffset: Int64
}

extension KafkaClient {
    /// The active producers of each partition, asked of the partitions' leaders.
    public func describeProducers(_ partitions: [TopicPartition]) async throws -> [TopicPartition: [ActiveProducer]] {
        var result: [TopicPartition: [ActiveProducer]] = [:]
        for (leader, led) in try await leaders(for: partitions) {
            var request = DescribeProducersRequest()
            request.topics = Dictionary(grouping: led, by: \.topic).sorted { $0.key < $1.key }.map { topic, parts in
                var t = DescribeProducersRequest.TopicRequest()
                t.name = topic
                t.partitionIndexes = parts.map(\.partition).sorted()
                return t
            }
            let response = try await connection(toNode: leader).send(request)
            for topic in response.topics {
                for partition in topic.partitions {
                    if let error = KafkaError(errorCode: partition.errorCode, message: partition.errorMessage) {
                        throw KafkaError(error.code, message: "\(topic.name)[\(partition.partitionIndex)]: \(error.message ?? error.name)")
                    }
                    result[TopicPartition(topic.name, partition.partitionIndex)] = partition.activeProducers.map {
                        ActiveProducer(
                            producerId: $0.producerId, producerEpoch: $0.producerEpoch, lastSequence: $0.lastSequence,
                            lastTimestamp: $0.lastTimestamp, coordinatorEpoch: $0.coordinatorEpoch,
                            currentTransactionStartOffset: $0.currentTxnStartOffset)
                    }
                }
            }
        }
        return result
    }
}
