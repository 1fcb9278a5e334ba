import KafkaProtocol
import NIOCore
import OnceCore

/// WriteTxnMarkers from an operator's tool (KIP-664's abort of a hanging transaction): an ABORT
/// marker for a producer on partitions where it holds an open transaction. COMMIT markers come
/// only from this broker's own coordinator, and a transaction the coordinator still considers live
/// is never aborted this way: that is the coordinator's to end (EndTxn, its timeout, or
/// `once txn abort`). Under `--flush always` the answer waits until the markers are durable, as
/// every acknowledged write does.
extension Broker {
    func writeTxnMarkers(_ req: WriteTxnMarkersRequest, _ request: Request) -> EventLoopFuture<WriteTxnMarkersResponse> {
        var written: [TopicPartitionKey] = []
        let response = writeTxnMarkers(req, request, written: &written)
        guard config.flushPolicy.acknowledgesOnlyDurableWrites, !written.isEmpty else {
            return request.eventLoop.makeSucceededFuture(response)
        }
        let logs = written.compactMap { storage.partition(topic: $0.topic, partition: $0.partition) }
        return runtime.task(on: request.eventLoop) {
            for log in logs {
                try await log.waitDurable(upTo: log.logEndOffset)
                // The high watermark moved with the sync: wake the fetches it held back.
                self.waiters.notify(.init(topic: log.topic, partition: log.partition))
            }
            return response
        }
    }

    private func writeTxnMarkers(
        _ req: WriteTxnMarkersRequest, _ request: Request, written: inout [TopicPartitionKey]
    ) -> WriteTxnMarkersResponse {
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
                            if code == .none { written.append(TopicPartitionKey(t.name, p)) }
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
