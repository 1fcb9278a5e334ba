/// Log compaction's rules, as Kafka's LogCleaner applies them, over plain data: which records and
/// batches of a partition's cleanable range survive. The storage engine reads the batches, asks
/// this, and rewrites what it is told; it decides nothing itself, so every engine cleans alike.
///
/// The range must start at the log start, so every transaction's data lies in it before its
/// marker. Records at or after the first transaction without a marker in the range (the range's
/// last stable offset) are kept untouched and do not count as the latest value of their key: a
/// read_committed consumer cannot see them yet, so what it can see must not lose anything to them.
public enum CleaningPlan {
    public struct Record: Sendable, Equatable {
        public var offset: Int64
        /// Nil for a keyless record: compaction cannot place it, so it is removed, as Kafka does.
        public var key: [UInt8]?
        /// A null value: the key's deletion.
        public var isTombstone: Bool
        public init(offset: Int64, key: [UInt8]?, isTombstone: Bool) {
            self.offset = offset
            self.key = key
            self.isTombstone = isTombstone
        }
    }

    public enum Kind: Sendable, Equatable {
        case data
        /// A transaction marker of the batch's producer.
        case marker(commit: Bool)
        /// A control batch that ends no transaction; kept as it is.
        case otherControl
    }

    public struct Batch: Sendable, Equatable {
        public var baseOffset: Int64
        public var lastOffset: Int64
        /// -1 when the batch has no producer.
        public var producerId: Int64
        public var isTransactional: Bool
        public var kind: Kind
        public var records: [Record]
        /// Whether `delete.retention.ms` has passed for this batch, so its tombstones and (for a
        /// marker whose transaction has no record left) the batch itself may go.
        public var deleteHorizonPassed: Bool
        public init(
            baseOffset: Int64, lastOffset: Int64, producerId: Int64 = -1, isTransactional: Bool = false,
            kind: Kind = .data, records: [Record], deleteHorizonPassed: Bool = false
        ) {
            self.baseOffset = baseOffset
            self.lastOffset = lastOffset
            self.producerId = producerId
            self.isTransactional = isTransactional
            self.kind = kind
            self.records = records
            self.deleteHorizonPassed = deleteHorizonPassed
        }
    }

    public enum Outcome: Sendable, Equatable {
        /// Unchanged.
        case keep
        /// Rewritten with only the records at these indexes, keeping its base and last offset and
        /// its producer fields; possibly none, when the batch stays only as its producer's last.
        case keepRecords([Int])
        /// Removed from the log.
        case remove
    }

    /// One outcome per batch, in order. Batches must be in offset order.
    public static func outcomes(_ batches: [Batch]) -> [Outcome] {
        let transactions = Transactions(batches)
        // The latest offset of each key among records a read_committed reader can see.
        var latest: [[UInt8]: Int64] = [:]
        for (i, batch) in batches.enumerated() where batch.kind == .data && batch.baseOffset < transactions.stableEnd {
            if batch.isTransactional && transactions.outcome[i] != true { continue }
            for record in batch.records {
                guard let key = record.key else { continue }
                latest[key] = max(latest[key] ?? .min, record.offset)
            }
        }
        // Kafka keeps each producer's last data batch, even emptied, so the producer's epoch and
        // sequence survive a restart that rebuilds them from the log; and, when that batch is
        // transactional, the marker that ends it, or the rebuilt state would see it still open.
        var lastDataBatch: [Int64: Int] = [:]
        for (i, batch) in batches.enumerated() where batch.producerId >= 0 && batch.kind == .data {
            lastDataBatch[batch.producerId] = i
        }
        var pinned = Set(lastDataBatch.values)
        for i in lastDataBatch.values {
            if let marker = transactions.marker[i] { pinned.insert(marker) }
        }

        var result = [Outcome](repeating: .keep, count: batches.count)
        // Records each marker's transaction still has after this pass.
        var survivors = [Int: Int]()
        for (i, batch) in batches.enumerated() where batch.kind == .data {
            guard batch.baseOffset < transactions.stableEnd else { continue }
            let retained: [Int]
            if batch.isTransactional && transactions.outcome[i] == nil {
                continue
            } else if batch.isTransactional && transactions.outcome[i] == false {
                retained = []
            } else {
                retained = batch.records.indices.filter { r in
                    let record = batch.records[r]
                    guard let key = record.key, latest[key] == record.offset else { return false }
                    return !(record.isTombstone && batch.deleteHorizonPassed)
                }
            }
            if let marker = transactions.marker[i] { survivors[marker, default: 0] += retained.count }
            if retained.count == batch.records.count {
                result[i] = .keep
            } else if retained.isEmpty && !pinned.contains(i) {
                result[i] = .remove
            } else {
                result[i] = .keepRecords(retained)
            }
        }
        for (i, batch) in batches.enumerated() {
            guard case .marker = batch.kind, batch.baseOffset < transactions.stableEnd else { continue }
            if batch.deleteHorizonPassed && survivors[i, default: 0] == 0 && !pinned.contains(i) {
                result[i] = .remove
            }
        }
        return result
    }

    /// The first offset of the first transaction undecided in `batches`, or nil when none is:
    /// where a pass's cleaning stops, so the part after it is still dirty for the next pass.
    public static func stableEnd(_ batches: [Batch]) -> Int64? {
        let end = Transactions(batches).stableEnd
        return end == .max ? nil : end
    }

    /// How each transactional batch ended, read from the markers that follow it.
    struct Transactions {
        /// Per batch index: true committed, false aborted, nil undecided (no marker in the range)
        /// or not transactional.
        var outcome: [Int: Bool] = [:]
        /// Per transactional data batch index: the index of the marker that ends it.
        var marker: [Int: Int] = [:]
        /// The first offset of the first transaction still undecided in the range.
        var stableEnd: Int64 = .max

        init(_ batches: [Batch]) {
            var open: [Int64: [Int]] = [:]
            for (i, batch) in batches.enumerated() where batch.producerId >= 0 {
                switch batch.kind {
                case .data where batch.isTransactional:
                    open[batch.producerId, default: []].append(i)
                case .marker(let commit):
                    for member in open.removeValue(forKey: batch.producerId) ?? [] {
                        outcome[member] = commit
                        marker[member] = i
                    }
                default:
                    break
                }
            }
            for members in open.values {
                if let first = members.first { stableEnd = min(stableEnd, batches[first].baseOffset) }
            }
        }
    }
}
