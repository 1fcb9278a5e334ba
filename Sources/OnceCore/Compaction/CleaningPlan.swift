/// Log compaction's rules, as Kafka's LogCleaner applies them, over plain data: which records and
/// batches of a partition's cleanable range survive. The storage engine reads the batches, asks
/// this, and rewrites what it is told; it decides nothing itself, so every engine cleans alike.
///
/// The range must start at the log start, so every transaction's data lies in it before its
/// marker. Records at or after the first transaction without a marker in the range (the range's
/// last stable offset) are kept untouched and do not count as the latest value of their key: a
/// read_committed consumer cannot see them yet, so what it can see must not lose anything to them.
///
/// The latest offset of each key comes from the dirty section only (the records from the first
/// dirty offset on), in an `OffsetMap` of bounded size, as Kafka's cleaner does: the clean section
/// holds each key at most once already, so a record of it goes only when the dirty section has its
/// key again. When the map fills, the plan cleans up to the first record whose key did not fit
/// and leaves the rest for the next pass, so a backlog of any size is cleaned in bounded memory.
public enum CleaningPlan {
    public struct Record: Sendable, Equatable {
        public var offset: Int64
        /// The key's digest; nil for a keyless record: compaction cannot place it, so it is
        /// removed, as Kafka does.
        public var key: OffsetMap.Digest?
        /// A null value: the key's deletion.
        public var isTombstone: Bool
        public init(offset: Int64, key: [UInt8]?, isTombstone: Bool) {
            self.offset = offset
            self.key = key.map(OffsetMap.Digest.init)
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

    /// What a pass does to the batches it was given.
    public struct Plan: Sendable, Equatable {
        /// One per batch, in order.
        public var outcomes: [Outcome]
        /// The first offset this plan leaves dirty: the first of an undecided transaction, or the
        /// first record whose key did not fit in the map; nil when everything given was cleaned.
        public var end: Int64?
        /// The size of the offset map the plan used.
        public var mapBytes: Int
    }

    /// One outcome per batch, in order, as a pass with a map of unbounded size would decide.
    public static func outcomes(_ batches: [Batch]) -> [Outcome] {
        plan(batches, firstDirty: 0, mapBytes: .max).outcomes
    }

    /// The plan for batches (in offset order, from the log start) whose records before `firstDirty`
    /// were cleaned by earlier passes, with an offset map of at most `mapBytes`.
    public static func plan(_ batches: [Batch], firstDirty: Int64, mapBytes: Int) -> Plan {
        let transactions = Transactions(batches)
        // Only records a read_committed reader can see count as a key's latest.
        func counts(_ i: Int) -> Bool {
            let batch = batches[i]
            return batch.kind == .data && batch.baseOffset < transactions.stableEnd
                && (!batch.isTransactional || transactions.outcome[i] == true)
        }
        var dirtyRecords = 0
        for i in batches.indices where counts(i) && batches[i].lastOffset >= firstDirty {
            dirtyRecords += batches[i].records.count
        }
        var latest = OffsetMap(maxBytes: mapBytes, expectedKeys: dirtyRecords)
        var mapEnd = Int64.max
        filling: for i in batches.indices where counts(i) && batches[i].lastOffset >= firstDirty {
            for record in batches[i].records where record.offset >= firstDirty {
                guard let key = record.key else { continue }
                guard latest.put(key, offset: record.offset) else {
                    mapEnd = record.offset
                    break filling
                }
            }
        }
        let end = min(transactions.stableEnd, mapEnd)
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
            guard batch.baseOffset < end else { continue }
            let retained: [Int]
            if batch.isTransactional && transactions.outcome[i] == nil {
                continue
            } else if batch.isTransactional && transactions.outcome[i] == false {
                retained = []
            } else {
                retained = batch.records.indices.filter { r in
                    let record = batch.records[r]
                    // What the map did not reach stays as it is, for the pass that maps it.
                    guard record.offset < end else { return true }
                    guard let key = record.key, record.offset >= latest.offset(of: key) ?? record.offset else {
                        return false
                    }
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
            guard case .marker = batch.kind, batch.baseOffset < end else { continue }
            if batch.deleteHorizonPassed && survivors[i, default: 0] == 0 && !pinned.contains(i) {
                result[i] = .remove
            }
        }
        return Plan(outcomes: result, end: end == .max ? nil : end, mapBytes: latest.bytes)
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
