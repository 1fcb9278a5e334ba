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

    init(log: any PartitionLog, snapshotName: String, table: ProducerStateTable) {
        self.log = log
        self.snapshotName = snapshotName
        self.state = NIOLockedValueBox(State(table: table))
    }

    /// Loads the table: the snapshot if it still matches the log, then every batch after it.
    static func load(log: any PartitionLog, snapshotName: String, storage: any LogStorage) throws -> PartitionProducers {
        var table = ProducerStateTable()
        var from = log.logStartOffset
        if let bytes = try? storage.readState(named: snapshotName),
            let snapshot = try? ProducerStateSnapshot(decoding: bytes),
            snapshot.offset <= log.logEndOffset
        {
            table = snapshot.table
            from = max(snapshot.offset, log.logStartOffset)
        }
        try replay(log, from: from, into: &table)
        return PartitionProducers(log: log, snapshotName: snapshotName, table: table)
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
                if header.baseOffset >= offset && header.hasProducerId && !header.isControl {
                    table.batchAppended(incoming(header), firstOffset: header.baseOffset, lastOffset: header.lastOffset)
                }
                offset = header.lastOffset + 1
                advanced = true
            }
            guard advanced else { break }
        }
    }

    static func incoming(_ header: RecordBatchHeader) -> ProducerStateTable.IncomingBatch {
        .init(
            producerId: header.producerId, producerEpoch: header.producerEpoch,
            firstSequence: header.baseSequence, lastSequence: header.lastSequence,
            isTransactional: header.isTransactional, maxTimestamp: header.maxTimestamp)
    }

    /// Checks a producer's batch against the table and appends it if it is new; the three steps
    /// happen under the partition's lock.
    func append(_ records: ByteBuffer, header: RecordBatchHeader) throws -> Appended {
        try state.withLockedValue { s in
            let batch = Self.incoming(header)
            switch s.table.check(batch) {
            case .duplicate(let cached):
                return .duplicate(firstOffset: cached.firstOffset, lastOffset: cached.lastOffset)
            case .reject(let rejection):
                throw rejection
            case .append:
                let result = try log.append(records)
                s.table.batchAppended(batch, firstOffset: result.baseOffset, lastOffset: result.lastOffset)
                s.version &+= 1
                return .appended(result)
            }
        }
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
        try storage.writeState(named: snapshotName, snapshot.encoded())
        state.withLockedValue { $0.snapshotVersion = max($0.snapshotVersion, version) }
    }

    /// Forgets producers idle since before `cutoff`.
    func expire(idleBefore cutoff: Int64) -> [Int64] {
        state.withLockedValue { s in
            let expired = s.table.expireProducers(idleBefore: cutoff)
            if !expired.isEmpty { s.version &+= 1 }
            return expired
        }
    }
}

extension ProducerStateTable.Rejection: Error {
    var errorCode: ErrorCode {
        switch self {
        case .staleEpoch(_, let transactional): transactional ? .producerFenced : .invalidProducerEpoch
        case .outOfOrderSequence: .outOfOrderSequenceNumber
        }
    }
}
