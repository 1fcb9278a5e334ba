import KafkaProtocol
import NIOCore
import OnceCore
import OnceStorage

/// WriteTxnMarkers, from two senders. The transaction coordinator on another broker sends the
/// COMMIT or ABORT markers of the transactions it completes for the partitions this broker leads,
/// stamped with its coordinator epoch (the leader epoch of `__transaction_state-0`, never
/// negative). An operator's tool (KIP-664's abort of a hanging transaction, `once txn
/// abort-hanging`) sends an ABORT with no coordinator epoch (-1): it ends only an open transaction
/// the partition holds, and never one this broker's coordinator still considers live, which is
/// that coordinator's to end (EndTxn, its timeout, or `once txn abort`).
///
/// Each partition is answered on its own, as Kafka's `handleWriteTxnMarkersRequest` does:
/// UNKNOWN_TOPIC_OR_PARTITION for one that does not exist, NOT_LEADER_OR_FOLLOWER for one led
/// elsewhere (the coordinator looks the leader up again and resends), INVALID_PRODUCER_EPOCH for a
/// marker older than the producer's epoch there.
extension Broker {
    func writeTxnMarkers(_ req: WriteTxnMarkersRequest, _ request: Request) -> EventLoopFuture<WriteTxnMarkersResponse> {
        // Markers are the coordinator's to write: Cluster CLUSTER_ACTION, as Kafka asks of brokers.
        let allowed = authorization(request).allowsCluster(.clusterAction)
        return runtime.task(on: request.eventLoop) {
            var response = WriteTxnMarkersResponse()
            for marker in req.markers {
                var result = WriteTxnMarkersResponse.WritableTxnMarkerResult()
                result.producerId = marker.producerId
                for t in marker.topics {
                    var topic = WriteTxnMarkersResponse.WritableTxnMarkerTopicResult()
                    topic.name = t.name
                    for p in t.partitionIndexes {
                        var partition = WriteTxnMarkersResponse.WritableTxnMarkerPartitionResult()
                        partition.partitionIndex = p
                        let code = allowed
                            ? await self.writeTxnMarker(marker, TopicPartitionKey(t.name, p)) : .clusterAuthorizationFailed
                        if code != .none { self.metrics.error(.writeTxnMarkers, code) }
                        partition.errorCode = code.rawValue
                        topic.partitions.append(partition)
                    }
                    result.topics.append(topic)
                }
                response.markers.append(result)
            }
            return response
        }
    }

    private func writeTxnMarker(_ marker: WriteTxnMarkersRequest.WritableTxnMarker, _ key: TopicPartitionKey) async -> ErrorCode {
        guard storage.partition(topic: key.topic, partition: key.partition) != nil else { return .unknownTopicOrPartition }
        guard cluster.leads(key) else { return .notLeaderOrFollower }
        let fromCoordinator = marker.coordinatorEpoch >= 0
        // Only a coordinator commits.
        guard fromCoordinator || !marker.transactionResult else { return .invalidRequest }
        do {
            if fromCoordinator {
                return try await transactions.writeCoordinatorMarker(
                    key, producerId: marker.producerId, producerEpoch: marker.producerEpoch, commit: marker.transactionResult,
                    coordinatorEpoch: marker.coordinatorEpoch, now: clock())
            }
            let code = try transactions.abortHanging(
                key, producerId: marker.producerId, producerEpoch: marker.producerEpoch, now: clock())
            // Under `--flush always` the answer waits until the marker is durable, as every
            // acknowledged write does.
            if code == .none, config.flushPolicy.acknowledgesOnlyDurableWrites,
                let log = storage.partition(topic: key.topic, partition: key.partition)
            {
                try await log.waitDurable(upTo: log.logEndOffset)
                // The high watermark moved with the sync: wake the fetches it held back.
                waiters.notify(.init(topic: key.topic, partition: key.partition))
            }
            return code
        } catch StorageError.notLeader {
            return .notLeaderOrFollower
        } catch {
            return transactionStorageFailure(error)
        }
    }
}
