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

    let client: InterBrokerClient
    let cluster: any ClusterView
    private let logger: Logger

    init(client: InterBrokerClient, cluster: any ClusterView, logger: Logger) {
        self.client = client
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
            for (leader, partitions) in byLeader {
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
        do {
            let response = try await client.send(request, version: Self.writeTxnMarkersVersion, to: leader)
            var codes: [TopicPartitionKey: ErrorCode] = [:]
            for result in response.markers where result.producerId == markers.producerId {
                for topic in result.topics {
                    for p in topic.partitions { codes[TopicPartitionKey(topic.name, p.partitionIndex)] = ErrorCode(p.errorCode) }
                }
            }
            // A partition the answer left out was not written.
            for partition in partitions where codes[partition] == nil { codes[partition] = .unknownServerError }
            return codes
        } catch {
            logger.log(level: Self.level(error), "transaction markers not delivered", metadata: [
                "broker": "\(leader)", "producer": "\(markers.producerId)", "error": "\(error)",
            ])
            return Dictionary(uniqueKeysWithValues: partitions.map { ($0, ErrorCode.networkException) })
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
        do {
            let response = try await client.send(request, version: Self.addPartitionsToTxnVersion, to: coordinator)
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
            for partition in partitions where codes[partition] == nil { codes[partition] = .unknownServerError }
            return codes
        } catch {
            logger.log(level: Self.level(error), "transaction coordinator not reached", metadata: [
                "broker": "\(coordinator)", "transactionalId": "\(transactionalId)", "error": "\(error)",
            ])
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
