/// The transaction coordinator for every transactional id: a pure state machine. Each event
/// returns the error to answer (if any) and the actions the driver must perform in order: make a
/// metadata change durable, write COMMIT/ABORT markers (then report `markersWritten`). Time and
/// producer ids come in as values; there is no I/O here.
///
/// The prepare state is made durable before any marker is written, so after a crash the restarted
/// coordinator finishes the markers (`recover`); the complete state is recorded after them.
public struct TransactionCoordinator: Sendable {
    public struct Config: Sendable, Equatable {
        /// `transaction.max.timeout.ms`. Default: 15 minutes.
        public var maxTimeoutMs: Int32 = 900_000
        /// `transactional.id.expiration.ms`: an id idle this long with no open transaction is
        /// forgotten. Default: 7 days.
        public var idExpirationMs: Int64 = 604_800_000
        /// How long a prepared transaction waits for its markers before the periodic check writes
        /// them again. Default: 5 seconds.
        public var markerRetryMs: Int64 = 5_000
        public init() {}
    }

    public let config: Config
    public private(set) var transactions: [String: TransactionMetadata] = [:]
    /// The transactional id behind each current producer id (for produce-time verification).
    private var idsByProducer: [Int64: String] = [:]

    public init(config: Config = Config()) {
        self.config = config
    }

    public enum Failure: Error, Sendable, Equatable {
        case invalidTransactionTimeout
        /// The previous transaction is still finishing; retry.
        case concurrentTransactions
        /// An older epoch: a newer producer with this transactional id exists.
        case producerFenced
        /// The producer id does not belong to this transactional id.
        case invalidProducerIdMapping
        /// The request does not fit the transaction's state (e.g. commit after abort).
        case invalidTxnState
    }

    public enum Action: Sendable, Equatable {
        /// Make this metadata durable in the transaction log before performing later actions.
        case persist(TransactionMetadata)
        /// Durably forget the id.
        case remove(transactionalId: String)
        /// Write a COMMIT or ABORT marker for the producer to each partition, then call
        /// `markersWritten(transactionalId:now:)`.
        case writeMarkers(transactionalId: String, producerId: Int64, producerEpoch: Int16, commit: Bool, partitions: [TopicPartitionKey])
    }

    public struct Outcome: Sendable, Equatable {
        public var failure: Failure?
        public var actions: [Action] = []
        public var producerId: Int64 = -1
        public var producerEpoch: Int16 = -1

        static func fail(_ failure: Failure) -> Outcome { Outcome(failure: failure) }
    }

    // MARK: Events

    /// InitProducerId with a transactional id: registers the id or bumps its epoch, fencing every
    /// earlier producer. A transaction the previous producer left open is aborted first; the client
    /// is told CONCURRENT_TRANSACTIONS and retries once the markers are written.
    ///
    /// With an expected producer id and epoch (KIP-360: a producer bumping its own epoch after an
    /// abortable error) the bump happens only for the current epoch. The epoch before the bump is
    /// remembered only for such a bump, so a retry whose answer was lost gets the same answer again;
    /// a bump without an expected epoch (a new instance) or a fence by timeout records none, and an
    /// old instance asking with its epoch is then fenced instead of handed the new one, as in Kafka.
    public mutating func initProducerIdReceived(
        transactionalId: String, timeoutMs: Int32, expectedProducerId: Int64 = -1, expectedProducerEpoch: Int16 = -1,
        now: Int64, newProducerId: () throws -> Int64
    ) rethrows -> Outcome {
        guard timeoutMs > 0, timeoutMs <= config.maxTimeoutMs else { return .fail(.invalidTransactionTimeout) }
        guard var txn = transactions[transactionalId] else {
            let created = TransactionMetadata(
                transactionalId: transactionalId, producerId: try newProducerId(), producerEpoch: 0, timeoutMs: timeoutMs,
                state: .empty, lastUpdateTimestamp: now)
            return commit(created, response: true)
        }
        let expected = expectedProducerId >= 0 ? (id: expectedProducerId, epoch: expectedProducerEpoch) : nil
        if let expected {
            // The expected id must be the current one, or the one an exhausted epoch rolled away from.
            let known = expected.id == txn.producerId
                || (expected.id == txn.lastProducerId && Self.isExhausted(expected.epoch))
            guard known else { return .fail(.producerFenced) }
        }
        switch txn.state {
        case .prepareCommit, .prepareAbort:
            return .fail(.concurrentTransactions)
        case .ongoing:
            // Only the current producer may have its own open transaction aborted by a bump.
            if let expected, expected.id != txn.producerId || expected.epoch != txn.producerEpoch {
                return .fail(.producerFenced)
            }
            var outcome = beginAbort(&txn, fence: true, now: now)
            outcome.failure = .concurrentTransactions
            return outcome
        case .empty, .completeCommit, .completeAbort, .dead:
            if let expected, expected.epoch != txn.producerEpoch || expected.id != txn.producerId {
                guard expected.epoch == txn.lastProducerEpoch, txn.lastProducerEpoch >= 0 else { return .fail(.producerFenced) }
                // A retry of a bump whose answer was lost: answer it again.
                var outcome = Outcome()
                outcome.producerId = txn.producerId
                outcome.producerEpoch = txn.producerEpoch
                return outcome
            }
            try bumpEpoch(&txn, recordingLastEpoch: expected != nil, newProducerId: newProducerId)
            txn.timeoutMs = timeoutMs
            txn.state = .empty
            txn.partitions = []
            txn.startTimestamp = -1
            txn.lastUpdateTimestamp = now
            return commit(txn, response: true)
        }
    }

    /// Kafka stops handing out epochs at `Int16.max - 1`: the last one is kept for fencing by timeout.
    static func isExhausted(_ epoch: Int16) -> Bool { epoch >= Int16.max - 1 }

    /// AddPartitionsToTxn / AddOffsetsToTxn, or (transactions V2, `transactionVersion` 2) a
    /// partition's own request on the first transactional write there (Produce v12,
    /// TxnOffsetCommit v5): the transaction will write these partitions. The first add of a
    /// transaction records which rules its end follows.
    public mutating func addPartitionsReceived(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, partitions: [TopicPartitionKey],
        transactionVersion: Int16 = 0, now: Int64
    ) -> Outcome {
        guard var txn = transactions[transactionalId] else { return .fail(.invalidProducerIdMapping) }
        if let failure = Self.checkProducer(txn, producerId, producerEpoch) { return .fail(failure) }
        switch txn.state {
        case .prepareCommit, .prepareAbort: return .fail(.concurrentTransactions)
        case .dead: return .fail(.invalidProducerIdMapping)
        case .ongoing where txn.partitions.isSuperset(of: partitions):
            return Outcome()  // nothing new to record
        case .empty, .completeCommit, .completeAbort, .ongoing:
            if txn.state != .ongoing {
                txn.state = .ongoing
                txn.partitions = []
                txn.startTimestamp = now
                txn.transactionVersion = transactionVersion
            }
            txn.partitions.formUnion(partitions)
            txn.lastUpdateTimestamp = now
            return commit(txn, response: false)
        }
    }

    /// KIP-890 verification of a transactional Produce: the producer must be the current one and the
    /// partition part of its ongoing transaction, or a zombie or a stray write could slip in. With a
    /// transactional id (AddPartitionsToTxn v4 verify-only) the producer must also belong to that id.
    public func verify(
        transactionalId: String? = nil, producerId: Int64, producerEpoch: Int16, partition: TopicPartitionKey
    ) -> Failure? {
        guard let id = transactionalId ?? idsByProducer[producerId], let txn = transactions[id],
            txn.producerId == producerId
        else { return .invalidProducerIdMapping }
        if producerEpoch < txn.producerEpoch { return .producerFenced }
        guard producerEpoch == txn.producerEpoch, txn.state == .ongoing, txn.partitions.contains(partition) else {
            return .invalidTxnState
        }
        return nil
    }

    /// EndTxn. A retry of a finished EndTxn gets the same answer; one for the other outcome, or
    /// for a transaction still finishing, gets INVALID_TXN_STATE or CONCURRENT_TRANSACTIONS as Kafka answers.
    ///
    /// With transactions V2 (EndTxn v5, `transactionVersion` 2) the end bumps the epoch, and the
    /// markers carry the bumped one, so nothing sent at the old epoch (a delayed Produce or EndTxn
    /// of this transaction, KAFKA-17754) can act on the next transaction: the partitions refuse
    /// it and so does the coordinator. The answer carries the producer id and epoch to use next;
    /// an exhausted epoch moves to a new producer id (`newProducerId`) once the markers are written.
    /// A V2 transaction knows a retry of its EndTxn only by the epoch just below the current one.
    public mutating func endTransactionReceived(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, commit: Bool, transactionVersion: Int16 = 0,
        now: Int64, newProducerId: () throws -> Int64
    ) rethrows -> Outcome {
        guard var txn = transactions[transactionalId] else { return .fail(.invalidProducerIdMapping) }
        if txn.isTransactionV2 {
            if let failure = Self.checkV2EndProducer(txn, producerId, producerEpoch) { return .fail(failure) }
        } else if let failure = Self.checkProducer(txn, producerId, producerEpoch) {
            // A producer whose transaction timed out finds its epoch bumped: it is fenced, as in Kafka.
            return .fail(failure)
        }
        switch txn.state {
        case .ongoing:
            let bump = transactionVersion >= 2
            if bump {
                txn.transactionVersion = transactionVersion
                txn.lastProducerId = txn.producerId
                txn.lastProducerEpoch = txn.producerEpoch
                if Self.isExhausted(txn.producerEpoch) { txn.nextProducerId = try newProducerId() }
                txn.producerEpoch += 1
            }
            var outcome = commit ? beginCommit(&txn, now: now) : beginAbort(&txn, fence: false, now: now)
            if bump {
                (outcome.producerId, outcome.producerEpoch) = txn.nextProducerId >= 0
                    ? (txn.nextProducerId, 0) : (txn.producerId, txn.producerEpoch)
            }
            return outcome
        case .prepareCommit:
            return .fail(commit ? .concurrentTransactions : .invalidTxnState)
        case .prepareAbort:
            return .fail(commit ? .invalidTxnState : .concurrentTransactions)
        case .completeCommit:
            return commit ? Self.current(txn) : .fail(.invalidTxnState)
        case .completeAbort:
            return commit ? .fail(.invalidTxnState) : Self.current(txn)
        case .empty, .dead:
            return .fail(.invalidTxnState)
        }
    }

    /// The answer to a retried EndTxn: nothing to do, and the identity to carry on with.
    private static func current(_ txn: TransactionMetadata) -> Outcome {
        var outcome = Outcome()
        outcome.producerId = txn.producerId
        outcome.producerEpoch = txn.producerEpoch
        return outcome
    }

    /// Kafka's epoch check for an EndTxn on a V2 transaction. An open (or never begun) one needs
    /// the current epoch. A prepared or finished one accepts only a retry of the EndTxn that
    /// bumped it (the epoch just below, recorded by that bump), or of one whose bump rolled the
    /// producer id; a same-epoch EndTxn there would be the next transaction's and is fenced, as
    /// is the producer a timeout fenced (that bump records no previous epoch).
    private static func checkV2EndProducer(_ txn: TransactionMetadata, _ producerId: Int64, _ producerEpoch: Int16) -> Failure? {
        let retryOfBump = producerId == txn.producerId && txn.lastProducerEpoch >= 0
            && producerEpoch == txn.lastProducerEpoch && txn.producerEpoch == producerEpoch + 1
        let retryOfRoll = producerId != txn.producerId && producerId == txn.lastProducerId
            && isExhausted(producerEpoch) && producerEpoch == txn.lastProducerEpoch && txn.producerEpoch == 0
        guard producerId == txn.producerId || retryOfRoll else { return .invalidProducerIdMapping }
        let valid: Bool
        switch txn.state {
        case .ongoing, .empty, .dead: valid = producerEpoch == txn.producerEpoch
        case .prepareCommit, .prepareAbort: valid = retryOfBump
        case .completeCommit, .completeAbort: valid = retryOfBump || retryOfRoll
        }
        return valid ? nil : .producerFenced
    }

    /// Whether a transaction of this producer that writes to `partition` is still live here: open
    /// (its marker will come with EndTxn or its timeout) or prepared (its markers are being written).
    /// A partition's open transaction the coordinator does not consider live is hanging: its
    /// marker was lost (a cut log tail) or its coordinator state was.
    public func isLive(producerId: Int64, partition: TopicPartitionKey) -> Bool {
        guard let id = idsByProducer[producerId], let txn = transactions[id], txn.producerId == producerId else {
            return false
        }
        switch txn.state {
        case .ongoing, .prepareCommit, .prepareAbort: return txn.partitions.contains(partition)
        case .empty, .completeCommit, .completeAbort, .dead: return false
        }
    }

    /// Whether the transaction is prepared for exactly these markers and still waits for them. The
    /// driver asks before writing, so a retried or late marker action never writes into the
    /// producer's next transaction.
    public func awaitsMarkers(transactionalId: String, producerId: Int64, producerEpoch: Int16, commit: Bool) -> Bool {
        guard let txn = transactions[transactionalId], txn.producerId == producerId, txn.producerEpoch == producerEpoch
        else { return false }
        return txn.state == (commit ? .prepareCommit : .prepareAbort)
    }

    /// The driver wrote every marker of the prepared transaction: record the outcome.
    public mutating func markersWritten(transactionalId: String, now: Int64) -> Outcome {
        guard var txn = transactions[transactionalId] else { return Outcome() }
        switch txn.state {
        case .prepareCommit: txn.state = .completeCommit
        case .prepareAbort: txn.state = .completeAbort
        default: return Outcome()
        }
        if txn.nextProducerId >= 0 {
            // The markers fenced the exhausted id everywhere; the next transaction uses the new one.
            txn.producerId = txn.nextProducerId
            txn.producerEpoch = 0
            txn.nextProducerId = -1
        }
        // The start time stays, as in Kafka: DescribeTransactions of a finished transaction shows it.
        txn.partitions = []
        txn.lastUpdateTimestamp = now
        return commit(txn, response: false)
    }

    /// Periodic check: aborts transactions open longer than their timeout (bumping the epoch, so
    /// the abandoned producer is fenced), writes again the markers of a transaction prepared longer
    /// than `markerRetryMs` ago (a marker write failed, so it would otherwise stay prepared and
    /// answer CONCURRENT_TRANSACTIONS forever), and forgets ids idle past `idExpirationMs`.
    public mutating func timeoutsChecked(now: Int64) -> Outcome {
        var outcome = Outcome()
        for id in transactions.keys.sorted() {
            guard var txn = transactions[id] else { continue }
            if txn.state == .prepareCommit || txn.state == .prepareAbort {
                if txn.lastUpdateTimestamp + config.markerRetryMs <= now {
                    outcome.actions.append(.writeMarkers(
                        transactionalId: id, producerId: txn.producerId, producerEpoch: txn.producerEpoch,
                        commit: txn.state == .prepareCommit, partitions: txn.partitions.sorted()))
                }
            } else if txn.state == .ongoing && txn.startTimestamp + Int64(txn.timeoutMs) <= now {
                outcome.actions += beginAbort(&txn, fence: true, now: now).actions
            } else if txn.state.isComplete && txn.lastUpdateTimestamp + config.idExpirationMs <= now {
                transactions[id] = nil
                if idsByProducer[txn.producerId] == id { idsByProducer[txn.producerId] = nil }
                outcome.actions.append(.remove(transactionalId: id))
            }
        }
        return outcome
    }

    /// An operator ends a hung transaction (`once txn abort`): abort with an epoch bump.
    public mutating func abortRequested(transactionalId: String, now: Int64) -> Outcome {
        guard var txn = transactions[transactionalId] else { return .fail(.invalidProducerIdMapping) }
        switch txn.state {
        case .ongoing: return beginAbort(&txn, fence: true, now: now)
        case .prepareAbort, .prepareCommit: return .fail(.concurrentTransactions)
        default: return .fail(.invalidTxnState)
        }
    }

    /// Rebuilds the coordinator from the transaction log's latest records. Prepared transactions
    /// resume: their markers are written again (a marker for a finished partition is harmless).
    public mutating func recover(_ records: [TransactionMetadata]) -> Outcome {
        var outcome = Outcome()
        for txn in records {
            transactions[txn.transactionalId] = txn
            idsByProducer[txn.producerId] = txn.transactionalId
        }
        for id in transactions.keys.sorted() {
            guard let txn = transactions[id], txn.state == .prepareCommit || txn.state == .prepareAbort else { continue }
            outcome.actions.append(.writeMarkers(
                transactionalId: id, producerId: txn.producerId, producerEpoch: txn.producerEpoch,
                commit: txn.state == .prepareCommit, partitions: txn.partitions.sorted()))
        }
        return outcome
    }

    // MARK: Transitions

    private mutating func beginCommit(_ txn: inout TransactionMetadata, now: Int64) -> Outcome {
        txn.state = .prepareCommit
        txn.lastUpdateTimestamp = now
        var outcome = commit(txn, response: false)
        outcome.actions.append(.writeMarkers(
            transactionalId: txn.transactionalId, producerId: txn.producerId, producerEpoch: txn.producerEpoch,
            commit: true, partitions: txn.partitions.sorted()))
        return outcome
    }

    /// Aborts the open transaction. A fence (timeout, a new instance, an operator) bumps the epoch,
    /// so the markers carry it and the partitions refuse the old producer, and records no previous
    /// epoch: nobody may claim the old one back. The bump may reach `Int16.max`; the next
    /// InitProducerId then rolls to a new producer id.
    private mutating func beginAbort(_ txn: inout TransactionMetadata, fence: Bool, now: Int64) -> Outcome {
        if fence {
            precondition(txn.producerEpoch < Int16.max, "an open transaction at the last epoch \(txn.producerId)")
            txn.lastProducerId = txn.producerId
            txn.lastProducerEpoch = -1
            txn.producerEpoch += 1
        }
        txn.state = .prepareAbort
        txn.lastUpdateTimestamp = now
        var outcome = commit(txn, response: false)
        outcome.actions.append(.writeMarkers(
            transactionalId: txn.transactionalId, producerId: txn.producerId, producerEpoch: txn.producerEpoch,
            commit: false, partitions: txn.partitions.sorted()))
        return outcome
    }

    /// A new epoch for the id; when epochs run out, a new producer id at epoch 0. The epoch before
    /// is remembered only for a producer's own bump (KIP-360), so only it can retry the bump.
    private func bumpEpoch(
        _ txn: inout TransactionMetadata, recordingLastEpoch: Bool, newProducerId: () throws -> Int64
    ) rethrows {
        txn.lastProducerId = txn.producerId
        txn.lastProducerEpoch = recordingLastEpoch ? txn.producerEpoch : -1
        if Self.isExhausted(txn.producerEpoch) {
            txn.producerId = try newProducerId()
            txn.producerEpoch = 0
        } else {
            txn.producerEpoch += 1
        }
    }

    private mutating func commit(_ txn: TransactionMetadata, response: Bool) -> Outcome {
        if let old = transactions[txn.transactionalId], old.producerId != txn.producerId {
            idsByProducer[old.producerId] = nil
        }
        transactions[txn.transactionalId] = txn
        idsByProducer[txn.producerId] = txn.transactionalId
        var outcome = Outcome(actions: [.persist(txn)])
        if response {
            outcome.producerId = txn.producerId
            outcome.producerEpoch = txn.producerEpoch
        }
        return outcome
    }

    private static func checkProducer(_ txn: TransactionMetadata, _ producerId: Int64, _ producerEpoch: Int16) -> Failure? {
        guard producerId == txn.producerId else { return .invalidProducerIdMapping }
        guard producerEpoch == txn.producerEpoch else { return .producerFenced }
        return nil
    }
}
