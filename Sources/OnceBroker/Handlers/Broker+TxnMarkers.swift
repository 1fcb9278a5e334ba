import KafkaProtocol
import OnceCore

/// WriteTxnMarkers from an operator's tool (KIP-664's abort of a hanging transaction): an ABORT
/// marker for a producer on partitions where it holds an open transaction. COMMIT markers come
/// only from this broker's own coordinator, and a transaction the coordinator still considers live
/// is never aborted this way: that is the coordinator's to end (EndTxn, its timeout, or
/// `once txn abort`).
extension Broker {
    func writeTxnMarkers(_ req: WriteTxnMarkersRequest, _ request: Request) -> WriteTxnMarkersResponse {
        var response = WriteTxnMarkersResponse()
        // Markers are the coordinator's to write: Cluster CLUSTER_ACTION, as Kafka asks of brokers.
        let allowed = authorization(request).allowsCluster(.clusterAction)
        response.markers = req.markers.map { marker in
            var result = WriteTxnMarkersResponse.WritableTxnMarkerResult()
            result.producerId = marker.producerId
            result.topics = marker.topics.map { t in
                var topic = WriteTxnMarkersResponse.WritableTxnMarkerTopicResult()
                topic.name = t.name
                topic.partitions = t.partitionIndexes.map { p in
                    var partition = WriteTxnMarkersResponse.WritableTxnMarkerPartitionResult()
                    partition.partitionIndex = p
                    let code: ErrorCode
                    if !allowed {
                        code = .clusterAuthorizationFailed
                    } else if marker.transactionResult {
                        code = .invalidRequest
                    } else {
                        do {
                            code = try transactions.abortHanging(
                                TopicPartitionKey(t.name, p), producerId: marker.producerId,
                                producerEpoch: marker.producerEpoch, now: clock())
                        } catch {
                            code = transactionStorageFailure(error)
                        }
                    }
                    if code != .none { metrics.error(.writeTxnMarkers, code) }
                    partition.errorCode = code.rawValue
                    return partition
                }
                return topic
            }
            return result
        }
        return response
    }
}
