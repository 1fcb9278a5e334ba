import KafkaProtocol

/// A partition's open transaction that its coordinator does not consider live (KIP-664): its
/// marker, or the coordinator's record of it, was lost, and it holds the partition's last stable
/// offset back.
public struct HangingTransaction: Sendable, Hashable {
    public var partition: TopicPartition
    public var producerId: Int64
    public var producerEpoch: Int16
    /// First offset of the open transaction: read_committed readers stop here.
    public var startOffset: Int64
    /// Why it is hanging, in words.
    public var reason: String
}

extension KafkaClient {
    /// Finds hanging transactions as Kafka's `kafka-transactions find-hanging` does: every producer
    /// with an open transaction on the partitions (DescribeProducers) whose transactional id, found
    /// through ListTransactions, has no open transaction covering that partition (DescribeTransactions).
    public func findHangingTransactions(in partitions: [TopicPartition]) async throws -> [HangingTransaction] {
        let open = try await describeProducers(partitions).flatMap { partition, producers in
            producers.filter { $0.currentTransactionStartOffset >= 0 }.map { (partition, $0) }
        }
        guard !open.isEmpty else { return [] }
        var idsByProducer: [Int64: String] = [:]
        for listing in try await listTransactions() { idsByProducer[listing.producerId] = listing.transactionalId }
        var descriptions: [String: TransactionDescription] = [:]
        var hanging: [HangingTransaction] = []
        for (partition, producer) in open.sorted(by: { ($0.0.topic, $0.0.partition) < ($1.0.topic, $1.0.partition) }) {
            let reason: String?
            if let id = idsByProducer[producer.producerId] {
                if descriptions[id] == nil { descriptions[id] = try await describeTransaction(id) }
                let txn = descriptions[id]!
                let live = ["Ongoing", "PrepareCommit", "PrepareAbort"].contains(txn.state) && txn.partitions.contains(partition)
                reason = live ? nil : "coordinator has '\(id)' \(txn.state) without this partition"
            } else {
                reason = "no coordinator knows producer \(producer.producerId)"
            }
            if let reason {
                hanging.append(HangingTransaction(
                    partition: partition, producerId: producer.producerId, producerEpoch: Int16(clamping: producer.producerEpoch),
                    startOffset: producer.currentTransactionStartOffset, reason: reason))
            }
        }
        return hanging
    }

    /// Aborts one partition's hanging transaction with a WriteTxnMarkers ABORT marker, as Kafka's
    /// `kafka-transactions abort` does. The broker refuses (INVALID_TXN_STATE) when the coordinator
    /// still considers the transaction live, so a running application's transaction is never hit.
    public func abortHangingTransaction(_ hanging: HangingTransaction) async throws {
        guard let (leader, _) = try await leaders(for: [hanging.partition]).first else {
            throw KafkaError(.unknownTopicOrPartition, message: "\(hanging.partition)")
        }
        var topic = WriteTxnMarkersRequest.WritableTxnMarkerTopic()
        topic.name = hanging.partition.topic
        topic.partitionIndexes = [hanging.partition.partition]
        var marker = WriteTxnMarkersRequest.WritableTxnMarker()
        marker.producerId = hanging.producerId
        marker.producerEpoch = hanging.producerEpoch
        marker.transactionResult = false
        marker.coordinatorEpoch = -1
        marker.topics = [topic]
        var request = WriteTxnMarkersRequest()
        request.markers = [marker]
        let response = try await connection(toNode: leader).send(request)
        for code in response.markers.flatMap({ $0.topics.flatMap { $0.partitions.map(\.errorCode) } }) {
            if let error = KafkaError(errorCode: code, message: "\(hanging.partition) producer \(hanging.producerId)") { throw error }
        }
    }
}
