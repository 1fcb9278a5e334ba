extension CleaningPlan {
    /// How the range's transactions ended, in state that grows with transactions and producers,
    /// never with records: the aborted ones (a transaction not listed whose batch lies below
    /// `stableEnd` was committed), each producer's last data batch, and the first undecided offset.
    public struct Transactions: Sendable {
        /// Per producer, the aborted transactions' first offset to marker offset, in order.
        var aborted: [Int64: [ClosedRange<Int64>]] = [:]
        /// Per producer, the base offset of its last data batch in the range. Kafka keeps that
        /// batch, even emptied, so the producer's epoch and sequence survive a restart that rebuilds
        /// them from the log; and, when it is transactional, the marker that ends it, or the rebuilt
        /// state would see the transaction still open.
        var lastDataBatch: [Int64: Int64] = [:]
        /// The first offset of the first transaction still undecided in the range.
        public internal(set) var stableEnd: Int64 = .max
        /// Records of data batches that reach the dirty section, to size the offset map.
        public internal(set) var dirtyRecords = 0

        func isAborted(_ batch: Batch) -> Bool {
            guard batch.isTransactional, let ranges = aborted[batch.producerId] else { return false }
            var low = 0
            var high = ranges.count
            while low < high {
                let mid = (low + high) / 2
                if ranges[mid].upperBound < batch.baseOffset { low = mid + 1 } else { high = mid }
            }
            return low < ranges.count && ranges[low].contains(batch.baseOffset)
        }

        func isProducersLast(_ batch: Batch) -> Bool {
            batch.producerId >= 0 && batch.kind == .data && lastDataBatch[batch.producerId] == batch.baseOffset
        }

        /// What the state takes, counted as Kafka counts its map: 8 bytes a number, 16 a key.
        public var bytes: Int {
            aborted.values.reduce(0) { $0 + 8 + 16 * $1.count } + 16 * lastDataBatch.count
        }
    }

    /// The first stage: every batch of the range in order; only headers (and a marker's type) matter.
    public struct TransactionScan: Sendable {
        let firstDirty: Int64
        private var open: [Int64: Int64] = [:]
        public private(set) var transactions = Transactions()
        /// The largest state the scan held, open transactions included.
        public private(set) var peakBytes = 0

        public init(firstDirty: Int64) {
            self.firstDirty = firstDirty
        }

        public mutating func read(_ batch: Batch, recordCount: Int) {
            if batch.kind == .data && batch.lastOffset >= firstDirty { transactions.dirtyRecords += recordCount }
            guard batch.producerId >= 0 else { return }
            switch batch.kind {
            case .data:
                transactions.lastDataBatch[batch.producerId] = batch.baseOffset
                if batch.isTransactional && open[batch.producerId] == nil { open[batch.producerId] = batch.baseOffset }
            case .marker(let commit):
                if let first = open.removeValue(forKey: batch.producerId), !commit {
                    transactions.aborted[batch.producerId, default: []].append(first...batch.baseOffset)
                }
            case .otherControl:
                break
            }
            transactions.stableEnd = open.values.min() ?? .max
            peakBytes = max(peakBytes, transactions.bytes + 16 * open.count)
        }
    }

    /// The second stage: the dirty section's keys into the offset map, up to where it fills.
    public struct MapBuilder: Sendable {
        public let transactions: Transactions
        let firstDirty: Int64
        public private(set) var map: OffsetMap
        private var mapEnd = Int64.max
        private var passedStableEnd = false

        public init(_ transactions: Transactions, firstDirty: Int64, mapBytes: Int) {
            self.transactions = transactions
            self.firstDirty = firstDirty
            map = OffsetMap(maxBytes: mapBytes, expectedKeys: transactions.dirtyRecords)
        }

        /// The first offset this pass leaves dirty, or `.max`.
        public var end: Int64 { min(transactions.stableEnd, mapEnd) }
        /// Whether later batches can add nothing: the map is full or the stable end is reached.
        public var isDone: Bool { mapEnd != .max || passedStableEnd }

        /// Only records a read_committed reader can see count as a key's latest.
        public mutating func read(_ batch: Batch) {
            guard !isDone else { return }
            if batch.baseOffset >= transactions.stableEnd {
                passedStableEnd = true
                return
            }
            guard batch.kind == .data, batch.lastOffset >= firstDirty, !transactions.isAborted(batch) else { return }
            for record in batch.records where record.offset >= firstDirty {
                guard let key = record.key else { continue }
                guard map.put(key, offset: record.offset) else {
                    mapEnd = record.offset
                    return
                }
            }
        }
    }
}
