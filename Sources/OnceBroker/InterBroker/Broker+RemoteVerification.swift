import KafkaProtocol
import OnceCore

/// KIP-890's check of a transactional write when the producer's transaction coordinator is on
/// another broker: the partition leader (or the group coordinator, for TxnOffsetCommit) asks it
/// through AddPartitionsToTxn v5 before the append, as Kafka's AddPartitionsToTxnManager does:
/// verify-only for the requests before transactions V2, an add for Produce v12 and
/// TxnOffsetCommit v5.
extension Broker {
    /// What a Produce's partitions learned before their append: the code for each one refused,
    /// and the verification guard of each one the remote coordinator allowed, which the append
    /// checks instead of the local coordinator (a marker landing meanwhile clears the guard, and
    /// the append is then refused).
    struct ProduceVerification: Sendable {
        var refused: [TopicPartitionKey: ErrorCode] = [:]
        var guards: [TopicPartitionKey: ProducerStateTable.VerificationGuard] = [:]
    }

    /// The live broker coordinating `transactionalId` when it is not this one; nil when this
    /// broker coordinates it (or holds everything). `.some(nil)`: no broker leads its partition now.
    func remoteTransactionCoordinator(_ transactionalId: String) -> Int32?? {
        guard peers != nil else { return nil }
        guard let leader = cluster.leader(of: transactionCoordinatorPartition(transactionalId)) else { return .some(nil) }
        return leader.nodeId == cluster.nodeId ? nil : .some(leader.nodeId)
    }

    /// Asks the remote coordinator about each producer's partitions this broker leads. Codes are
    /// turned into what Kafka's partition leader answers its client: PRODUCER_FENCED becomes
    /// INVALID_PRODUCER_EPOCH, TRANSACTION_ABORTABLE stays for a client that knows it (v11+) and is
    /// INVALID_TXN_STATE before, and a coordinator that could not answer (moved, loading, not
    /// reached) becomes NOT_ENOUGH_REPLICAS, which every producer retries without a metadata
    /// refresh; so does CONCURRENT_TRANSACTIONS below v12 (KAFKA-18662 keeps it for v12).
    func verifyRemotely(
        transactionalId: String, writes: [ProducerIdentity: [TopicPartitionKey]], coordinator: Int32?, version: Int16
    ) async -> ProduceVerification {
        var verification = ProduceVerification()
        for (producer, partitions) in writes {
            let led = partitions.filter { cluster.leads($0) }
            guard !led.isEmpty else { continue }
            guard let coordinator, let peers else {
                for key in led { verification.refused[key] = .notEnoughReplicas }
                continue
            }
            // The guards are taken before asking, so a marker written before the append ends them.
            var guards: [TopicPartitionKey: ProducerStateTable.VerificationGuard] = [:]
            for key in led {
                if let topic = storage.topic(named: key.topic),
                    let table = try? producers.producers(topic: topic, partition: key.partition)
                {
                    guards[key] = table.startVerification(producerId: producer.id)
                }
            }
            let codes = await peers.check(
                transactionalId: transactionalId, producerId: producer.id, producerEpoch: producer.epoch, partitions: led,
                add: version >= 12, coordinator: coordinator)
            for key in led {
                let code = Self.produceVerificationCode(codes[key] ?? .unknownServerError, version: version)
                if code == .none, let guardToken = guards[key] {
                    verification.guards[key] = guardToken
                } else {
                    verification.refused[key] = code == .none ? .unknownTopicOrPartition : code
                }
            }
        }
        return verification
    }

    static func produceVerificationCode(_ code: ErrorCode, version: Int16) -> ErrorCode {
        switch code {
        case .producerFenced: .invalidProducerEpoch
        case .transactionAbortable: version >= 11 ? .transactionAbortable : .invalidTxnState
        case .notCoordinator, .coordinatorNotAvailable, .coordinatorLoadInProgress, .networkException: .notEnoughReplicas
        case .concurrentTransactions: version >= 12 ? .concurrentTransactions : .notEnoughReplicas
        default: code
        }
    }

    /// The group coordinator's check of a TxnOffsetCommit with the remote transaction coordinator
    /// (an add from v5, a verify-only before). Codes as Kafka's group coordinator passes them on:
    /// PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH, TRANSACTION_ABORTABLE stays for v4 and is
    /// INVALID_TXN_STATE before, and a coordinator not reached is COORDINATOR_NOT_AVAILABLE, which
    /// the client retries after looking its coordinator up again.
    func verifyOffsetsRemotely(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, partition: TopicPartitionKey,
        coordinator: Int32?, version: Int16
    ) async -> ErrorCode {
        guard let coordinator, let peers else { return .coordinatorNotAvailable }
        let code = await peers.check(
            transactionalId: transactionalId, producerId: producerId, producerEpoch: producerEpoch, partitions: [partition],
            add: version >= 5, coordinator: coordinator)[partition] ?? .unknownServerError
        switch code {
        case .producerFenced: return .invalidProducerEpoch
        case .transactionAbortable: return version >= 4 ? .transactionAbortable : .invalidTxnState
        case .notCoordinator, .coordinatorLoadInProgress, .networkException: return .coordinatorNotAvailable
        default: return code
        }
    }
}
