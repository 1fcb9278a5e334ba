import KafkaProtocol
import NIOCore
import OnceCheck
@testable import OnceBroker
import OnceCore

/// A transactional producer as a client library runs it against a cluster, one request per step:
/// FindCoordinator for its transactional id, InitProducerId, AddPartitionsToTxn, Produce to each
/// partition's leader, EndTxn; NOT_COORDINATOR and COORDINATOR_NOT_AVAILABLE send it back to
/// FindCoordinator, COORDINATOR_LOAD_IN_PROGRESS and CONCURRENT_TRANSACTIONS make it retry, and a
/// Produce follows the partition's leader as the idempotent producer does. An instance speaking
/// transactions V2 sends no AddPartitionsToTxn (Produce v12 adds each partition through its
/// leader, which asks the coordinator wherever it is) and carries on with the epoch EndTxn v5 gives.
struct ClusterTransactionalClient {
    let transactionalId: String
    var instance = 0
    var v2 = false
    var coordinator: Int32?
    var producerId: Int64 = -1
    var epoch: Int16 = -1
    var sequences: [Int32: Int32] = [:]
    var serial = 0
    var open: Open?

    struct Open {
        var key: String
        var partitions: [Int32]
        var added = false
        var batches: Int
        var produced = 0
        var commit: Bool
        var pending: [String]?
        /// An EndTxn commit went out: from then on only the coordinator knows the outcome.
        var commitSent = false
    }

    var name: String { "\(transactionalId)#\(instance)\(v2 ? "v2" : "")" }
}

extension ClusterSimulation {
    /// The partitions a transaction writes: one or two of any, wherever they are led, so its
    /// markers go from the coordinator's broker to the others and their leaders check its writes
    /// with the coordinator (KIP-890).
    func transactionPartitions() -> [Int32] {
        let count = min(Int(options.partitions), Int.random(in: 1...2, using: &rng))
        return Array(Array(0..<options.partitions).shuffled(using: &rng).prefix(count)).sorted()
    }

    func transactionalStep(_ index: Int) {
        var c = transactional[index]
        defer { transactional[index] = c }
        guard let coordinator = c.coordinator else {
            var req = FindCoordinatorRequest()
            req.key = c.transactionalId
            req.keyType = 1
            req.coordinatorKeys = [c.transactionalId]
            guard let node = world.liveNodes.randomElement(using: &rng),
                let r = world.request(req, version: 4, to: node, from: c.name, as: FindCoordinatorResponse.self),
                let found = r.coordinators.first, found.errorCode == 0
            else { return }
            c.coordinator = found.nodeId
            return
        }
        guard c.producerId >= 0 else {
            var req = InitProducerIdRequest()
            req.transactionalId = c.transactionalId
            req.transactionTimeoutMs = Int32(Self.transactionTimeoutMs)
            req.producerId = -1
            req.producerEpoch = -1
            guard let r = world.request(req, version: 4, to: coordinator, from: c.name, as: InitProducerIdResponse.self) else {
                c.coordinator = nil
                return
            }
            note("\(c.name) InitProducerId at \(coordinator): \(ErrorCode(r.errorCode)) \(r.producerId)/\(r.producerEpoch)")
            if r.errorCode == 0 {
                c.producerId = r.producerId
                c.epoch = r.producerEpoch
                c.sequences = [:]
                events.append(.producerInitialized(
                    transactionalId: c.transactionalId, instance: c.name, producerId: r.producerId, epoch: r.producerEpoch))
            } else {
                coordinatorError(ErrorCode(r.errorCode), &c)
            }
            return
        }
        guard var txn = c.open else {
            let partitions = transactionPartitions()
            c.serial += 1
            let key = "\(c.name)/t\(c.serial)"
            c.open = .init(
                key: key, partitions: partitions, added: c.v2, batches: Int.random(in: 1...3, using: &rng), commit: rng.chance(0.7))
            events.append(.transactionBegan(
                transaction: key, transactionalId: c.transactionalId, instance: c.name, producerId: c.producerId, epoch: c.epoch))
            return
        }
        defer { if c.open != nil { c.open = txn } }
        if !txn.added {
            var t = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic()
            t.name = Self.topic
            t.partitions = txn.partitions
            var req = AddPartitionsToTxnRequest()
            req.v3AndBelowTransactionalId = c.transactionalId
            req.v3AndBelowProducerId = c.producerId
            req.v3AndBelowProducerEpoch = c.epoch
            req.v3AndBelowTopics = [t]
            guard let r = world.request(req, version: 3, to: coordinator, from: c.name, as: AddPartitionsToTxnResponse.self) else {
                c.coordinator = nil
                return
            }
            let codes = Set(r.resultsByTopicV3AndBelow.flatMap { $0.resultsByPartition.map { ErrorCode($0.partitionErrorCode) } })
            note("\(c.name) AddPartitionsToTxn \(txn.key) \(txn.partitions) at \(coordinator): \(codes)")
            if codes == [.none] {
                txn.added = true
            } else if let code = codes.first(where: { $0 != .none && $0 != .operationNotAttempted }) {
                coordinatorError(code, &c)
            }
            return
        }
        if txn.produced < txn.batches {
            let partition = txn.partitions[txn.produced % txn.partitions.count]
            let values = txn.pending ?? (0..<Int.random(in: 1...2, using: &rng)).map { "\(txn.key)/\(txn.produced)/\($0)" }
            if txn.pending == nil {
                for value in values {
                    events.append(.recordSent(
                        record: value, transaction: txn.key, topic: Self.topic, partition: partition, key: nil, value: value, source: nil))
                }
            }
            txn.pending = values
            guard let leader = leaderOf(partition) else { return }
            let sequence = c.sequences[partition, default: 0]
            let batch = RecordBatch.encode(
                records: values.enumerated().map { Record(offsetDelta: Int32($0.offset), key: nil, value: Array($0.element.utf8)) },
                baseTimestamp: world.clock.now, producerId: c.producerId, producerEpoch: c.epoch, baseSequence: sequence,
                isTransactional: true)
            var request = Self.produceRequest(partition: partition, batch: batch)
            request.transactionalId = c.transactionalId
            guard let r = world.request(request, version: c.v2 ? 12 : 9, to: leader.node, from: c.name, as: ProduceResponse.self) else {
                leaders[partition] = nil
                return
            }
            let answer = r.responses[0].partitionResponses[0]
            note("\(c.name) Produce \(txn.key) to \(partition) at \(leader.node) epoch \(c.epoch) sequence \(sequence): \(ErrorCode(answer.errorCode)) \(answer.baseOffset)")
            switch ErrorCode(answer.errorCode) {
            case .none:
                for (i, value) in values.enumerated() {
                    events.append(.recordAcknowledged(record: value, offset: answer.baseOffset + Int64(i)))
                }
                c.sequences[partition] = sequence + Int32(values.count)
                txn.pending = nil
                txn.produced += 1
            case .notLeaderOrFollower, .fencedLeaderEpoch, .unknownLeaderEpoch, .requestTimedOut, .kafkaStorageError,
                .unknownServerError, .notEnoughReplicas, .concurrentTransactions:
                leaders[partition] = nil
            default:
                // Abortable: the batch is given up with the transaction, as clients do.
                note("\(c.name) aborts \(txn.key) after \(ErrorCode(answer.errorCode)) on \(partition)")
                txn.pending = nil
                txn.produced = txn.batches
                txn.commit = false
            }
            return
        }
        var req = EndTxnRequest()
        req.transactionalId = c.transactionalId
        req.producerId = c.producerId
        req.producerEpoch = c.epoch
        req.committed = txn.commit
        if txn.commit { txn.commitSent = true }
        c.open = txn
        guard let r = world.request(req, version: c.v2 ? 5 : 3, to: coordinator, from: c.name, as: EndTxnResponse.self) else {
            c.coordinator = nil
            return
        }
        note("\(c.name) EndTxn \(txn.commit ? "commit" : "abort") \(txn.key) \(txn.partitions) at \(coordinator): \(ErrorCode(r.errorCode))")
        if r.errorCode == 0 {
            events.append(.transactionEnded(transaction: txn.key, outcome: txn.commit ? .committed : .aborted))
            c.open = nil
            if c.v2 {
                // The end bumped the epoch (or moved to a new producer id); sequences restart.
                c.producerId = r.producerId
                c.epoch = r.producerEpoch
                c.sequences = [:]
                events.append(.producerInitialized(
                    transactionalId: c.transactionalId, instance: c.name, producerId: r.producerId, epoch: r.producerEpoch))
            }
        } else {
            coordinatorError(ErrorCode(r.errorCode), &c)
        }
    }

    /// What a client does with a coordinator's refusal.
    private func coordinatorError(_ code: ErrorCode, _ c: inout ClusterTransactionalClient) {
        switch code {
        case .notCoordinator, .coordinatorNotAvailable:
            c.coordinator = nil
        case .coordinatorLoadInProgress, .concurrentTransactions, .requestTimedOut:
            break
        default:
            // Fenced or in a state it cannot leave: a new instance of the id takes over, which
            // aborts whatever this one left open (a commit it sent may still have won).
            note("\(c.name) gives up after \(code)")
            if let txn = c.open {
                events.append(.transactionEnded(transaction: txn.key, outcome: txn.commitSent ? .unknown : .aborted))
            }
            events.append(.fenced(transactionalId: c.transactionalId, instance: c.name, producerId: c.producerId, epoch: c.epoch))
            c = ClusterTransactionalClient(
                transactionalId: c.transactionalId, instance: c.instance + 1, v2: rng.chance(options.transactionsV2Share),
                coordinator: c.coordinator, serial: 0)
        }
    }

    /// At the end: a transaction still open was either committed by an EndTxn whose answer was
    /// lost or is aborted by the coordinator's timeout, which the finish lets pass.
    func abandonOpenTransactions() {
        for c in transactional {
            guard let txn = c.open else { continue }
            events.append(.transactionEnded(transaction: txn.key, outcome: txn.commitSent ? .unknown : .aborted))
        }
    }

    /// Every transaction the coordinators hold has completed: none is left prepared or open
    /// (the timeouts had time to abort any the clients left, and the markers for partitions led
    /// by other brokers had time to reach them).
    func checkTransactionsComplete() {
        for node in world.liveNodes {
            guard let broker = world.nodes[node]?.broker, broker.transactions.load.serving else { continue }
            for txn in broker.transactions.transactions where !txn.state.isCompleteForCheck {
                let ledElsewhere = txn.partitions.filter { world.database.leases[$0]?.holder != node }
                anomalies.append("transaction of \(txn.transactionalId) (producer \(txn.producerId) epoch \(txn.producerEpoch), partitions \(txn.partitions.sorted().map(\.description)), led elsewhere \(ledElsewhere.sorted().map(\.description))) still \(txn.state.name) on coordinator \(node) after the run")
            }
        }
    }
}

extension TransactionState {
    var isCompleteForCheck: Bool { self == .empty || self == .completeCommit || self == .completeAbort || self == .dead }
}
