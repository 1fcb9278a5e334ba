import KafkaProtocol
import OnceCore
import OnceStorage

/// InitProducerId and DescribeProducers: the idempotent producer's id, and what the broker knows
/// of each producer writing to a partition (KIP-664).
extension Broker {
    func initProducerId(_ req: InitProducerIdRequest, _ request: Request) -> InitProducerIdResponse {
        var response = InitProducerIdResponse()
        // An idempotent producer needs Cluster IDEMPOTENT_WRITE or WRITE on some topic (KIP-679).
        let auth = authorization(request)
        guard auth.allowsCluster(.idempotentWrite) || auth.allowsAny(.write, .topic) else {
            response.errorCode = ErrorCode.clusterAuthorizationFailed.rawValue
            return response
        }
        // Without a transactional id every call gets a fresh id at epoch 0, as Kafka does; that is
        // also how an idempotent producer "bumps its epoch" after an unknown-producer error (KIP-360).
        do {
            response.producerId = try producers.allocateProducerId()
            response.producerEpoch = 0
        } catch {
            logger.error("producer id allocation failed", metadata: ["error": "\(error)"])
            response.errorCode = ErrorCode.kafkaStorageError.rawValue
        }
        return response
    }

    func describeProducers(_ req: DescribeProducersRequest, _ request: Request) -> DescribeProducersResponse {
        var response = DescribeProducersResponse()
        let auth = authorization(request)
        response.topics = req.topics.map { t in
            var topic = DescribeProducersResponse.TopicResponse()
            topic.name = t.name
            let allowed = auth.allowsTopic(.read, t.name)
            let meta = allowed ? storage.topic(named: t.name) : nil
            topic.partitions = t.partitionIndexes.map { index in
                var result = DescribeProducersResponse.PartitionResponse()
                result.partitionIndex = index
                guard allowed else {
                    result.errorCode = ErrorCode.topicAuthorizationFailed.rawValue
                    return result
                }
                do {
                    guard let meta, let table = try producers.producers(topic: meta, partition: index)?.table else {
                        result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                        return result
                    }
                    result.activeProducers = table.producers.sorted { $0.key < $1.key }.map { id, entry in
                        var p = DescribeProducersResponse.ProducerState()
                        p.producerId = id
                        p.producerEpoch = Int32(entry.epoch)
                        p.lastSequence = entry.lastSequence
                        p.lastTimestamp = entry.lastTimestamp
                        p.coordinatorEpoch = entry.coordinatorEpoch
                        p.currentTxnStartOffset = entry.currentTransactionFirstOffset ?? -1
                        return p
                    }
                } catch {
                    let (code, message) = errorCode(for: error)
                    result.errorCode = code.rawValue
                    result.errorMessage = message
                }
                return result
            }
            return topic
        }
        return response
    }
}
