import KafkaProtocol
import Logging
import OnceCore

/// The transaction requests one broker sends another, as Kafka's
/// TransactionMarkerChannelManager (the coordinator's markers to each partition's leader) and
/// AddPartitionsToTxnManager (a partition leader's check with the coordinator) send them.
///
/// Every answer is per partition; a request that got no answer at all (no address, connect
/// failed, timed out, the connection closed) is NETWORK_EXCEPTION for each of its partitions, as
/// Kafka's managers report a disconnect, and the caller retries or refuses as Kafka's would.
final class TransactionPeers: Sendable {
    /// WriteTxnMarkers v2 carries the transaction version (Kafka 4.x's coordinator sends it);
    /// AddPartitionsToTxn v5 lets the coordinator answer TRANSACTION_ABORTABLE.
    static let writeTxnMarkersVersion: Int16 = 2
    static let addPartitionsToTxnVersion: Int16 = 5

    let transport: any InterBrokerTransport
    let cluster: any ClusterView
    private let logger: Logger

    init(transport: any InterBrokerTransport, cluster: any ClusterView, logger: Logger) {
        self.transport = transport
        self.cluster = cluster
        self.logger = logger
    }

    /// One producer's COMMIT or ABORT for partitions led by other brokers.
    struct Markers: Sendable {
        var producerId: Int64
        var producerEpoch: Int16
        var commit: Bool
        var coordinatorEpoch: Int32
        var transactionVersion: Int8
        var partitions: [TopicPartitionKey]
    }

    /// Sends the markers to each partition's current leader, one request per broker, all at once.
    /// A partition without a leader in the view is NOT_LEADER_OR_FOLLOWER without a request.
    func write(_ markers: Markers) async -> [TopicPartitionKey: ErrorCode] {
        var byLeader: [Int32: [TopicPartitionKey]] = [:]
        var codes: [TopicPartitionKey: ErrorCode] = [:]
        for partition in markers.partitions {
            if let leader = cluster.leader(of: partition)?.nodeId, leader != cluster.nodeId {
                byLeader[leader, default: []].append(partition)
            } else {
                codes[partition] = .notLeaderOrFollower
            }
        }
        await withTaskGroup(of: [TopicPartitionKey: ErrorCode].self) { group in
            // In node order: a dictionary's order differs between runs, and a simulated seed
            // must start the requests in the same order to replay.
            for (leader, partitions) in byLeader.sorted(by: { $0.key < $1.key }) {
                group.addTask { await self.write(markers, partitions, to: leader) }
            }
            for await answered in group { codes.merge(answered) { _, new in new } }
        }
        return codes
    }

    private func write(_ markers: Markers, _ partitions: [TopicPartitionKey], to leader: Int32) async
        -> [TopicPartitionKey: ErrorCode]
    {
        var marker = WriteTxnMarkersRequest.WritableTxnMarker()
        marker.producerId = markers.producerId
        marker.producerEpoch = markers.producerEpoch
        marker.transactionResult = markers.commit
        marker.coordinatorEpoch = markers.coordinatorEpoch
        marker.transactionVersion = markers.transactionVersion
        marker.topics = Self.byTopic(partitions).map { name, indexes in
            var topic = WriteTxnMarkersRequest.WritableTxnMarkerTopic()
            topic.name = name
            topic.partitionIndexes = indexes
            return topic
        }
        var request = WriteTxnMarkersRequest()
        request.markers = [marker]
        return await ask(
            request, version: Self.writeTxnMarkersVersion, to: leader, for: partitions,
            unanswered: "transaction markers not delivered", ["producer": "\(markers.producerId)"]
        ) { response in
            var codes: [TopicPartitionKey: ErrorCode] = [:]
            for result in response.markers where result.producerId == markers.producerId {
                for topic in result.topics {
                    for p in topic.partitions { codes[TopicPartitionKey(topic.name, p.partitionIndex)] = ErrorCode(p.errorCode) }
                }
            }
            return codes
        }
    }

    /// Asks the transaction coordinator on another broker whether the producer may write
    /// transactional data to these partitions (`add` false: AddPartitionsToTxn verifyOnly, KIP-890
    /// part 1), or adds them to its transaction (`add` true: transactions V2's implicit add).
    /// The answer is the coordinator's code per partition, as it gave it.
    func check(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, partitions: [TopicPartitionKey], add: Bool,
        coordinator: Int32
    ) async -> [TopicPartitionKey: ErrorCode] {
        var txn = AddPartitionsToTxnRequest.AddPartitionsToTxnTransaction()
        txn.transactionalId = transactionalId
        txn.producerId = producerId
        txn.producerEpoch = producerEpoch
        txn.verifyOnly = !add
        txn.topics = Self.byTopic(partitions).map { name, indexes in
            var topic = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic()
            topic.name = name
            topic.partitions = indexes
            return topic
        }
        var request = AddPartitionsToTxnRequest()
        request.transactions = [txn]
        return await ask(
            request, version: Self.addPartitionsToTxnVersion, to: coordinator, for: partitions,
            unanswered: "transaction coordinator not reached", ["transactionalId": "\(transactionalId)"]
        ) { response in
            // A top-level code (CLUSTER_AUTHORIZATION_FAILED) answers for every partition.
            if response.errorCode != ErrorCode.none.rawValue {
                return Dictionary(uniqueKeysWithValues: partitions.map { ($0, ErrorCode(response.errorCode)) })
            }
            var codes: [TopicPartitionKey: ErrorCode] = [:]
            for result in response.resultsByTransaction where result.transactionalId == transactionalId {
                for topic in result.topicResults {
                    for p in topic.resultsByPartition {
                        codes[TopicPartitionKey(topic.name, p.partitionIndex)] = ErrorCode(p.partitionErrorCode)
                    }
                }
            }
            return codes
        }
    }

    /// One request to one broker about `partitions`, answered per partition: what `codes` reads
    /// from the response, UNKNOWN_SERVER_ERROR for a partition the answer left out (it was not
    /// acted on), NETWORK_EXCEPTION for each when no answer came.
    private func ask<R: KafkaRequest>(
        _ request: R, version: Int16, to node: Int32, for partitions: [TopicPartitionKey],
        unanswered message: Logger.Message, _ metadata: Logger.Metadata,
        codes: (R.Response) -> [TopicPartitionKey: ErrorCode]
    ) async -> [TopicPartitionKey: ErrorCode] {
        do {
            var answered = codes(try await transport.send(request, version: version, to: node))
            for partition in partitions where answered[partition] == nil { answered[partition] = .unknownServerError }
            return answered
        } catch {
            logger.log(
                level: Self.level(error), message,
                metadata: metadata.merging(["broker": "\(node)", "error": "\(error)"]) { _, new in new })
            return Dictionary(uniqueKeysWithValues: partitions.map { ($0, ErrorCode.networkException) })
        }
    }

    /// A broker in reconnect backoff was already reported when its connect failed; every request
    /// meanwhile would repeat that.
    private static func level(_ error: any Error) -> Logger.Level {
        (error as? InterBrokerError)?.kind == .backingOff ? .debug : .warning
    }

    private static func byTopic(_ partitions: [TopicPartitionKey]) -> [(String, [Int32])] {
        Dictionary(grouping: partitions, by: \.topic).sorted { $0.key < $1.key }.map { ($0.key, $0.value.map(\.partition).sorted()) }
    }
}
