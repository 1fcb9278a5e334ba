/// One partition's idempotence state: for each producer id, its epoch and the metadata of its last
/// five batches, as Kafka keeps them. It decides whether an incoming batch is new, a retry of one
/// already written (answered with the original offsets, not written again), or out of order.
///
/// Deciding and recording are two steps (`check`, then `batchAppended` with the offsets the log
/// assigned) because the decision must not change anything if the append then fails; the broker runs
/// both under the partition's lock. Pure: no I/O, no clock (timestamps come in as values).
public struct ProducerStateTable: Sendable, Equatable {
    /// How many batches per producer are remembered for duplicate detection; clients keep at most
    /// this many requests in flight, so a retry is always one of them.
    public static let cachedBatchCount = 5

    public private(set) var producers: [Int64: ProducerEntry] = [:]
    /// Aborted transactions whose data may still be in the log, in the order their markers were
    /// written (so by `lastOffset`): read_committed consumers get the ones overlapping a fetch.
    public private(set) var abortedTransactions: [AbortedTransaction] = []
    /// First offset of each producer's open transaction: derived from `producers`, kept apart so
    /// the LSO on every fetch costs the open transactions, not every producer ever seen.
    private var openTransactions: [Int64: Int64] = [:]
    /// KIP-890 verifications in progress, by producer: a transactional batch that would open a
    /// transaction here must carry the guard its verification started with, and a marker (which
    /// ends the transaction the coordinator verified) takes the guard away. Memory only: a restart
    /// fails the verifications in flight, which their producers retry.
    private var verifications: [Int64: VerificationGuard] = [:]
    private var nextGuard: UInt64 = 0

    public init() {}

    public init(producers: [Int64: ProducerEntry], abortedTransactions: [AbortedTransaction] = []) {
        self.producers = producers
        self.abortedTransactions = abortedTransactions
        for (id, entry) in producers {
            if let first = entry.currentTransactionFirstOffset { openTransactions[id] = first }
        }
    }

    /// One aborted transaction on this partition: its data spans `firstOffset` up to the ABORT
    /// marker at `lastOffset`.
    public struct AbortedTransaction: Sendable, Equatable {
        public var producerId: Int64
        public var firstOffset: Int64
        public var lastOffset: Int64
        public init(producerId: Int64, firstOffset: Int64, lastOffset: Int64) {
            self.producerId = producerId
            self.firstOffset = firstOffset
            self.lastOffset = lastOffset
        }
    }

    /// What the table remembers of one written batch.
    public struct BatchMetadata: Sendable, Equatable {
        public var firstSequence: Int32
        public var lastSequence: Int32
        public var firstOffset: Int64
        public var lastOffset: Int64
        /// The batch's max timestamp.
        public var timestamp: Int64

        public init(firstSequence: Int32, lastSequence: Int32, firstOffset: Int64, lastOffset: Int64, timestamp: Int64) {
            self.firstSequence = firstSequence
            self.lastSequence = lastSequence
            self.firstOffset = firstOffset
            self.lastOffset = lastOffset
            self.timestamp = timestamp
        }
    }

    public struct ProducerEntry: Sendable, Equatable {
        public var epoch: Int16
        /// Oldest first, at most `cachedBatchCount`.
        public var batches: [BatchMetadata]
        /// Max timestamp of the producer's latest batch; expiry counts from it.
        public var lastTimestamp: Int64
        /// First offset of the producer's open transaction on this partition, if any.
        public var currentTransactionFirstOffset: Int64?
        /// Epoch of the transaction coordinator that wrote the producer's last marker (-1: none).
        public var coordinatorEpoch: Int32

        public init(
            epoch: Int16, batches: [BatchMetadata], lastTimestamp: Int64,
            currentTransactionFirstOffset: Int64? = nil, coordinatorEpoch: Int32 = -1
        ) {
            self.epoch = epoch
            self.batches = batches
            self.lastTimestamp = lastTimestamp
            self.currentTransactionFirstOffset = currentTransactionFirstOffset
            self.coordinatorEpoch = coordinatorEpoch
        }

        public var lastSequence: Int32 { batches.last?.lastSequence ?? -1 }
    }

    /// The producer fields of an incoming batch header.
    public struct IncomingBatch: Sendable, Equatable {
        public var producerId: Int64
        public var producerEpoch: Int16
        public var firstSequence: Int32
        public var lastSequence: Int32
        public var isTransactional: Bool
        public var maxTimestamp: Int64

        public init(
            producerId: Int64, producerEpoch: Int16, firstSequence: Int32, lastSequence: Int32,
            isTransactional: Bool, maxTimestamp: Int64
        ) {
            self.producerId = producerId
            self.producerEpoch = producerEpoch
            self.firstSequence = firstSequence
            self.lastSequence = lastSequence
            self.isTransactional = isTransactional
            self.maxTimestamp = maxTimestamp
        }
    }

    /// Verifications in flight are not part of the durable state a table is compared by.
    public static func == (a: Self, b: Self) -> Bool {
        a.producers == b.producers && a.abortedTransactions == b.abortedTransactions
    }

    /// Proof that a producer's transaction was verified with its coordinator after this point in
    /// the partition's history.
    public struct VerificationGuard: Sendable, Hashable {
        let value: UInt64
    }

    /// Starts a KIP-890 verification: call before asking the coordinator, append with the guard after.
    public mutating func verificationStarted(producerId: Int64) -> VerificationGuard {
        nextGuard &+= 1
        let guardToken = VerificationGuard(value: nextGuard)
        verifications[producerId] = guardToken
        return guardToken
    }

    public enum Decision: Sendable, Equatable {
        /// New data: append it, then call `batchAppended`.
        case append
        /// A retry of a batch already in the log: answer with its offsets and write nothing.
        case duplicate(BatchMetadata)
        case reject(Rejection)
    }

    public enum Rejection: Sendable, Equatable {
        /// The epoch is older than the producer's current one: a zombie or a stale retry.
        case staleEpoch(current: Int16, transactional: Bool)
        /// The sequence does not follow the last one written (a gap, or an old retry no longer cached).
        case outOfOrderSequence(expected: Int32, received: Int32)
        /// A plain batch from a producer with an open transaction here, or a transactional batch that
        /// would open one after a marker ended the transaction its verification saw.
        case invalidTxnState
    }

    /// Decides what to do with a batch from a producer (producer id >= 0). Changes nothing.
    /// Order as Kafka: a cached duplicate first, then the epoch, then the sequence, then the
    /// transaction. `verification` is the guard of a transactional batch's KIP-890 verification.
    public func check(_ batch: IncomingBatch, verification: VerificationGuard? = nil) -> Decision {
        let openAtThisEpoch = producers[batch.producerId].map {
            $0.currentTransactionFirstOffset != nil && $0.epoch == batch.producerEpoch
        } ?? false
        if batch.isTransactional, let verification, !openAtThisEpoch, verifications[batch.producerId] != verification {
            return .reject(.invalidTxnState)
        }
        guard let entry = producers[batch.producerId] else {
            // Unknown producer: new, or its state expired or was removed with old segments. Kafka
            // (KIP-360) accepts any sequence here so the producer can carry on without losing data.
            return .append
        }
        if batch.producerEpoch == entry.epoch,
            let cached = entry.batches.first(where: {
                $0.firstSequence == batch.firstSequence && $0.lastSequence == batch.lastSequence
            })
        {
            return .duplicate(cached)
        }
        if batch.producerEpoch < entry.epoch {
            return .reject(.staleEpoch(current: entry.epoch, transactional: batch.isTransactional))
        }
        if batch.producerEpoch > entry.epoch {
            // A bumped epoch starts its sequences again at zero; a transaction still open from the
            // older epoch is over (see `abortsStaleTransaction`).
            return batch.firstSequence == 0 ? .append : .reject(.outOfOrderSequence(expected: 0, received: batch.firstSequence))
        }
        let expected = Self.nextSequence(after: entry.lastSequence)
        guard batch.firstSequence == expected else {
            return .reject(.outOfOrderSequence(expected: expected, received: batch.firstSequence))
        }
        return Self.transactionFits(batch, entry)
    }

    private static func transactionFits(_ batch: IncomingBatch, _ entry: ProducerEntry) -> Decision {
        !batch.isTransactional && entry.currentTransactionFirstOffset != nil ? .reject(.invalidTxnState) : .append
    }

    /// Records a batch the log accepted at `firstOffset...lastOffset` (after `.append`, and when
    /// rebuilding the table from the log).
    public mutating func batchAppended(_ batch: IncomingBatch, firstOffset: Int64, lastOffset: Int64) {
        let metadata = BatchMetadata(
            firstSequence: batch.firstSequence, lastSequence: batch.lastSequence,
            firstOffset: firstOffset, lastOffset: lastOffset, timestamp: batch.maxTimestamp)
        var entry = producers[batch.producerId]
            ?? ProducerEntry(epoch: batch.producerEpoch, batches: [], lastTimestamp: batch.maxTimestamp)
        if batch.producerEpoch != entry.epoch {
            entry.epoch = batch.producerEpoch
            entry.batches.removeAll()
        }
        entry.batches.append(metadata)
        if entry.batches.count > Self.cachedBatchCount {
            entry.batches.removeFirst(entry.batches.count - Self.cachedBatchCount)
        }
        entry.lastTimestamp = max(entry.lastTimestamp, batch.maxTimestamp)
        if batch.isTransactional && entry.currentTransactionFirstOffset == nil {
            entry.currentTransactionFirstOffset = firstOffset
            openTransactions[batch.producerId] = firstOffset
            verifications[batch.producerId] = nil
        }
        producers[batch.producerId] = entry
    }

    /// Whether appending this (accepted) batch must first abort the producer's open transaction
    /// here: it belongs to an older epoch, which the coordinator ended before it bumped, but whose
    /// marker this partition lost (a cut log tail). Left open, the newer epoch's marker would end
    /// it too, and could commit what was aborted.
    public func abortsStaleTransaction(_ batch: IncomingBatch) -> Bool {
        guard let entry = producers[batch.producerId] else { return false }
        return entry.currentTransactionFirstOffset != nil && batch.producerEpoch > entry.epoch
    }

    /// Whether a COMMIT/ABORT marker from the transaction coordinator may be written: a marker from
    /// an older epoch than the producer's current one is stale.
    public func checkMarker(producerId: Int64, producerEpoch: Int16) -> Rejection? {
        guard let entry = producers[producerId], producerEpoch < entry.epoch else { return nil }
        return .staleEpoch(current: entry.epoch, transactional: true)
    }

    /// Records a transaction marker written at `offset`: the producer's open transaction on this
    /// partition ends, and an aborted one joins the aborted index. A marker with a newer epoch (the
    /// coordinator aborting after a timeout or a new InitProducerId) fences older epochs here too.
    public mutating func markerAppended(
        producerId: Int64, producerEpoch: Int16, commit: Bool, coordinatorEpoch: Int32, offset: Int64, timestamp: Int64
    ) {
        var entry = producers[producerId] ?? ProducerEntry(epoch: producerEpoch, batches: [], lastTimestamp: timestamp)
        if producerEpoch > entry.epoch {
            entry.epoch = producerEpoch
            entry.batches.removeAll()
        }
        if let first = entry.currentTransactionFirstOffset, !commit {
            abortedTransactions.append(AbortedTransaction(producerId: producerId, firstOffset: first, lastOffset: offset))
        }
        entry.currentTransactionFirstOffset = nil
        openTransactions[producerId] = nil
        verifications[producerId] = nil
        entry.coordinatorEpoch = coordinatorEpoch
        entry.lastTimestamp = max(entry.lastTimestamp, timestamp)
        producers[producerId] = entry
    }

    /// Every producer with an open transaction here: its epoch and the transaction's first offset.
    public var openTransactionsByProducer: [(producerId: Int64, epoch: Int16, firstOffset: Int64)] {
        openTransactions.sorted { $0.key < $1.key }.compactMap { id, first in
            producers[id].map { (id, $0.epoch, first) }
        }
    }

    /// The first offset of the oldest open transaction: the last stable offset when there is one.
    public var firstUnstableOffset: Int64? {
        openTransactions.values.min()
    }

    /// Aborted transactions a read_committed fetch of `[from, upTo)` must name so the consumer drops
    /// their records: those whose marker is at or after `from` and whose data starts before `upTo`.
    public func abortedTransactions(from: Int64, upTo: Int64) -> [AbortedTransaction] {
        // Markers are appended in offset order, so the candidates are a suffix.
        var i = abortedTransactions.count
        while i > 0 && abortedTransactions[i - 1].lastOffset >= from { i -= 1 }
        return abortedTransactions[i...].filter { $0.firstOffset < upTo }
    }

    /// Forgets the aborted transactions these markers ended: the cleaner removes a marker only once
    /// its transaction has no record left, and a consumer told of a transaction whose marker is gone
    /// would drop the producer's records up to its next marker, a committed transaction's. Kafka's
    /// cleaner rewrites the .txnindex the same way. Returns whether the index changed.
    @discardableResult
    public mutating func abortMarkersRemoved(_ markers: [CleaningPlan.AbortMarker]) -> Bool {
        guard !markers.isEmpty else { return false }
        let removed = Set(markers)
        let before = abortedTransactions.count
        abortedTransactions.removeAll { removed.contains(.init(producerId: $0.producerId, offset: $0.lastOffset)) }
        return abortedTransactions.count != before
    }

    /// Keeps only the aborted transactions whose marker the log still holds: a snapshot written
    /// before a cleaner pass that removed markers, then a crash before the next snapshot, names
    /// transactions the log no longer ends.
    public mutating func retainAbortedTransactions(markerPresent: (AbortedTransaction) throws -> Bool) rethrows {
        let gone = try abortedTransactions.filter { try !markerPresent($0) }
        abortMarkersRemoved(gone.map { .init(producerId: $0.producerId, offset: $0.lastOffset) })
    }

    /// Forgets aborted transactions entirely below `offset` (their data was deleted by retention).
    public mutating func removeAbortedTransactions(endingBefore offset: Int64) {
        abortedTransactions.removeAll { $0.lastOffset < offset }
    }

    /// Removes producers idle since before `cutoff` (ms) that have no open transaction
    /// (`producer.id.expiration.ms`). Returns the removed ids.
    @discardableResult
    public mutating func expireProducers(idleBefore cutoff: Int64) -> [Int64] {
        let expired = producers.filter { $0.value.lastTimestamp < cutoff && $0.value.currentTransactionFirstOffset == nil }
            .map(\.key).sorted()
        for id in expired { producers[id] = nil }
        return expired
    }

    /// The sequence that follows `sequence`; sequences wrap from Int32.max to 0.
    public static func nextSequence(after sequence: Int32) -> Int32 {
        sequence == Int32.max ? 0 : sequence + 1
    }
}
