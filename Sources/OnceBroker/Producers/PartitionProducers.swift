import KafkaProtocol
import NIOConcurrencyHelpers
import NIOCore
import OnceCore
import OnceStorage

/// One partition's producer-state table and the lock that makes "check, append, record" atomic:
/// two connections producing to one partition must not both pass the sequence check for the same
/// slot. Built from the latest snapshot plus a replay of the log after it, so a retry that arrives
/// after a kill -9 and restart is still recognised.
final class PartitionProducers: Sendable {
    let log: any PartitionLog
    let snapshotName: String
    private struct State {
        var table: ProducerStateTable
        /// Bumped on every change, to skip snapshots of an unchanged table.
        var version: UInt64 = 0
        var snapshotVersion: UInt64 = 0
    }
    private let state: NIOLockedValueBox<State>

    /// The outcome of an append through the table.
    enum Appended {
        case appended(AppendResult)
        /// A retry: these are the offsets the original write got.
        case duplicate(firstOffset: Int64, lastOffset: Int64)
    }

    private init(log: any PartitionLog, snapshotName: String, table: ProducerStateTable) {
        self.log = log
        self.snapshotName = snapshotName
        self.state = NIOLockedValueBox(State(table: table))
    }

    /// Loads the table: the snapshot if it still matches the log, without the aborted transactions
    /// whose marker the cleaner removed since, then every batch after it. The cleaner's handler is
    /// set first and the log read after, under the table's lock: a pass either swaps before the
    /// read, which then finds its markers gone, or tells the handler, which waits for the load.
    static func load(log: any PartitionLog, snapshotName: String, storage: any LogStorage) throws -> PartitionProducers {
        var snapshot: ProducerStateSnapshot?
        if let bytes = try? storage.readState(named: snapshotName),
            let decoded = try? ProducerStateSnapshot(decoding: bytes)
        {
            if decoded.offset <= log.logEndOffset {
                snapshot = decoded
            } else {
                // A power cut took the log's tail from under the snapshot. It goes now, as Kafka
                // deletes snapshots past the log end: the offsets it claims are written again by
                // other batches, and once the log grew past it, it would be trusted and the replay
                // after it would skip those batches (a retry of one of them appended twice).
                try storage.removeState(named: snapshotName)
            }
        }
        let producers = PartitionProducers(log: log, snapshotName: snapshotName, table: snapshot?.table ?? ProducerStateTable())
        log.setAbortMarkerRemovalHandler { [weak producers] markers in producers?.abortMarkersRemoved(markers) }
        try producers.state.withLockedValue { s in
            let from = max(snapshot?.offset ?? log.logStartOffset, log.logStartOffset)
            let indexed = s.table.abortedTransactions.count
            try s.table.retainAbortedTransactions { try holdsMarker(log, of: $0) }
            // Replayed work or a dropped entry: the next periodic snapshot saves the next restart it.
            if from < log.logEndOffset || s.table.abortedTransactions.count != indexed { s.version = 1 }
            try replay(log, from: from, into: &s.table)
        }
        return producers
    }

    /// Whether the log still holds the marker that ended an aborted transaction: the cleaner may
    /// have removed it after the snapshot that names it was written.
    private static func holdsMarker(_ log: any PartitionLog, of aborted: ProducerStateTable.AbortedTransaction) throws -> Bool {
        guard aborted.lastOffset >= log.logStartOffset, aborted.lastOffset < log.logEndOffset else { return false }
        let chunk = try log.read(from: aborted.lastOffset, maxBytes: 4096, limitOffset: aborted.lastOffset + 1)
        guard chunk.readableBytes >= RecordBatchHeader.size else { return false }
        let header = try RecordBatchHeader(reading: chunk, at: chunk.readerIndex)
        return header.baseOffset == aborted.lastOffset && header.isControl && header.producerId == aborted.producerId
    }

    /// The cleaner is about to serve a log without these abort markers: their transactions leave
    /// the index first (see `ProducerStateTable.abortMarkersRemoved`).
    func abortMarkersRemoved(_ markers: [CleaningPlan.AbortMarker]) {
        state.withLockedValue { s in
            if s.table.abortMarkersRemoved(markers) { s.version &+= 1 }
        }
    }

    /// Applies every producer batch in `[from, logEnd)` to the table, reading headers only.
    static func replay(_ log: any PartitionLog, from start: Int64, into table: inout ProducerStateTable) throws {
        var offset = start
        let end = log.logEndOffset
        while offset < end {
            let chunk = try log.read(from: offset, maxBytes: 1 << 20, limitOffset: end)
            var position = chunk.readerIndex
            var advanced = false
            while position < chunk.writerIndex {
                let header = try RecordBatchHeader(reading: chunk, at: position)
                position += header.totalSize
                guard header.lastOffset >= offset else { continue }
                // A batch that starts before `start` is already in the snapshot.
                if header.baseOffset >= offset && header.hasProducerId {
                    if header.isControl {
                        try replayMarker(header, in: chunk, at: position - header.totalSize, into: &table)
                    } else {
                        table.batchAppended(incoming(header), firstOffset: header.baseOffset, lastOffset: header.lastOffset)
                    }
                }
                offset = header.lastOffset + 1
                advanced = true
            }
            guard advanced else { break }
        }
    }

    private static func replayMarker(
        _ header: RecordBatchHeader, in chunk: ByteBuffer, at position: Int, into table: inout ProducerStateTable
    ) throws {
        var bytes = chunk.getSlice(at: position, length: header.totalSize)!
        let batch = try RecordBatch.decode(from: &bytes)
        guard let record = batch.records.first, let marker = try? ControlRecord(decoding: record),
            marker.type.isTransactionMarker
        else { return }
        table.markerAppended(
            producerId: header.producerId, producerEpoch: header.producerEpoch, commit: marker.type == .commit,
            coordinatorEpoch: marker.coordinatorEpoch, offset: header.baseOffset, timestamp: header.maxTimestamp)
    }

    static func incoming(_ header: RecordBatchHeader) -> ProducerStateTable.IncomingBatch {
        .init(
            producerId: header.producerId, producerEpoch: header.producerEpoch,
            firstSequence: header.baseSequence, lastSequence: header.lastSequence,
            isTransactional: header.isTransactional, maxTimestamp: header.maxTimestamp)
    }

    /// Starts the KIP-890 verification of a transactional batch (see `ProducerStateTable.VerificationGuard`).
    func startVerification(producerId: Int64) -> ProducerStateTable.VerificationGuard {
        state.withLockedValue { $0.table.verificationStarted(producerId: producerId) }
    }

    /// Checks a producer's batch against the table and appends it if it is new; the three steps
    /// happen under the partition's lock.
    func append(
        _ records: ByteBuffer, header: RecordBatchHeader, verification: ProducerStateTable.VerificationGuard? = nil
    ) throws -> Appended {
        try state.withLockedValue { s in
            let batch = Self.incoming(header)
            switch s.table.check(batch, verification: verification) {
            case .duplicate(let cached):
                return .duplicate(firstOffset: cached.firstOffset, lastOffset: cached.lastOffset)
            case .reject(let rejection):
                throw rejection
            case .append:
                if s.table.abortsStaleTransaction(batch) {
                    try appendMarker(&s, producerId: batch.producerId, producerEpoch: batch.producerEpoch, commit: false,
                        coordinatorEpoch: -1, now: batch.maxTimestamp)
                }
                let result = try log.append(records)
                s.table.batchAppended(batch, firstOffset: result.baseOffset, lastOffset: result.lastOffset)
                s.version &+= 1
                return .appended(result)
            }
        }
    }

    /// Writes a COMMIT or ABORT marker for the producer's transaction on this partition and ends it
    /// there. Returns nil (and writes nothing) for a marker older than the producer's epoch.
    func appendMarker(
        producerId: Int64, producerEpoch: Int16, commit: Bool, coordinatorEpoch: Int32, now: Int64
    ) throws -> AppendResult? {
        try state.withLockedValue { s in
            if s.table.checkMarker(producerId: producerId, producerEpoch: producerEpoch) != nil { return nil }
            return try appendMarker(&s, producerId: producerId, producerEpoch: producerEpoch, commit: commit,
                coordinatorEpoch: coordinatorEpoch, now: now)
        }
    }

    @discardableResult
    private func appendMarker(
        _ s: inout State, producerId: Int64, producerEpoch: Int16, commit: Bool, coordinatorEpoch: Int32, now: Int64
    ) throws -> AppendResult {
        let batch = RecordBatch.encodeMarker(
            ControlRecord.marker(commit: commit, coordinatorEpoch: coordinatorEpoch), producerId: producerId,
            producerEpoch: producerEpoch, baseOffset: 0, timestamp: now)
        let result = try log.append(batch)
        s.table.markerAppended(
            producerId: producerId, producerEpoch: producerEpoch, commit: commit, coordinatorEpoch: coordinatorEpoch,
            offset: result.baseOffset, timestamp: now)
        s.version &+= 1
        return result
    }

    /// What read_committed readers may see: the last stable offset (the first offset of the oldest
    /// open transaction, or the log end) and the aborted transactions overlapping `[from, LSO)`.
    func stableView(from: Int64) -> (lastStableOffset: Int64, aborted: [ProducerStateTable.AbortedTransaction]) {
        state.withLockedValue { s in
            let lso = Self.lastStableOffset(s.table, highWatermark: log.highWatermark)
            return (lso, s.table.abortedTransactions(from: from, upTo: lso))
        }
    }

    /// The last stable offset and how many producers the table tracks, read together for a scrape.
    var gauges: (lastStableOffset: Int64, producers: Int) {
        state.withLockedValue { s in
            (Self.lastStableOffset(s.table, highWatermark: log.highWatermark), s.table.producers.count)
        }
    }

    private static func lastStableOffset(_ table: ProducerStateTable, highWatermark: Int64) -> Int64 {
        min(table.firstUnstableOffset ?? .max, highWatermark)
    }

    var table: ProducerStateTable {
        state.withLockedValue { $0.table }
    }

    /// Writes a snapshot if the table changed since the last one.
    func snapshot(to storage: any LogStorage) throws {
        let pending: (ProducerStateSnapshot, UInt64)? = state.withLockedValue { s in
            guard s.version != s.snapshotVersion else { return nil }
            return (ProducerStateSnapshot(offset: log.logEndOffset, table: s.table), s.version)
        }
        guard let (snapshot, version) = pending else { return }
        try storage.writeState(named: snapshotName, snapshot.encoded(), describing: log)
        state.withLockedValue { $0.snapshotVersion = max($0.snapshotVersion, version) }
    }

    /// Forgets producers idle since before `cutoff`, and aborted transactions whose data retention
    /// has already deleted.
    func expire(idleBefore cutoff: Int64) -> [Int64] {
        let logStart = log.logStartOffset
        return state.withLockedValue { s in
            let expired = s.table.expireProducers(idleBefore: cutoff)
            let abortedBefore = s.table.abortedTransactions.count
            s.table.removeAbortedTransactions(endingBefore: logStart)
            if !expired.isEmpty || s.table.abortedTransactions.count != abortedBefore { s.version &+= 1 }
            return expired
        }
    }
}

extension ProducerStateTable.Rejection: Error {
    /// A stale epoch on a partition write is INVALID_PRODUCER_EPOCH for every producer, as Kafka
    /// answers since KIP-588: it is the code clients treat as "fenced" on Produce, while
    /// PRODUCER_FENCED there would be taken for an abortable error and the zombie would never stop.
    var errorCode: ErrorCode {
        switch self {
        case .staleEpoch: .invalidProducerEpoch
        case .outOfOrderSequence: .outOfOrderSequenceNumber
        case .invalidTxnState: .invalidTxnState
        }
    }
}
