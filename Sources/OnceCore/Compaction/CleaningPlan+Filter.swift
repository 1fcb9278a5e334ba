extension CleaningPlan {
    /// The third stage: every batch of the range in order, each decided from the map and the
    /// transactions, with state per open transaction only.
    public struct Filter: Sendable {
        let transactions: Transactions
        let map: OffsetMap
        /// Batches from here on stay as they are.
        public let end: Int64
        let nowMs: Int64
        let deleteRetentionMs: Int64
        /// Per producer, its transaction so far: records it keeps, and whether it holds the
        /// producer's last data batch (then its marker stays too).
        private var open: [Int64: (survivors: Int, pinned: Bool)] = [:]
        public private(set) var earliestDeleteHorizonMs: Int64?
        /// The abort markers this pass removes, in offset order.
        public private(set) var removedAbortMarkers: [AbortMarker] = []
        public private(set) var peakBytes = 0

        public init(_ builder: MapBuilder, nowMs: Int64, deleteRetentionMs: Int64) {
            transactions = builder.transactions
            map = builder.map
            end = builder.end
            self.nowMs = nowMs
            self.deleteRetentionMs = deleteRetentionMs
        }

        /// The pass's state: the map, the transactions, and the open ones here.
        public var bytes: Int { map.bytes + transactions.bytes + 24 * open.count }

        private var newHorizon: Int64 {
            let (sum, overflow) = nowMs.addingReportingOverflow(deleteRetentionMs)
            return overflow ? .max : sum
        }

        private mutating func note(_ horizon: Int64) {
            earliestDeleteHorizonMs = min(earliestDeleteHorizonMs ?? horizon, horizon)
        }

        public mutating func decide(_ batch: Batch) -> Outcome {
            defer { peakBytes = max(peakBytes, bytes) }
            guard batch.baseOffset < end else { return .keep }
            let horizonPassed = batch.deleteHorizonMs.map { $0 <= nowMs } ?? false
            switch batch.kind {
            case .otherControl:
                return .keep
            case .marker(let commit):
                let transaction = open.removeValue(forKey: batch.producerId) ?? (0, false)
                guard transaction.survivors == 0, !transaction.pinned else { return .keep }
                if horizonPassed {
                    // The broker's aborted-transaction index must forget the transaction before
                    // this pass is served: a consumer told of it would drop the producer's records
                    // until its next marker, which with this one gone ends a committed transaction.
                    if !commit {
                        removedAbortMarkers.append(AbortMarker(producerId: batch.producerId, offset: batch.baseOffset))
                    }
                    return .remove
                }
                if let horizon = batch.deleteHorizonMs {
                    note(horizon)
                    return .keep
                }
                note(newHorizon)
                return .stampDeleteHorizon(newHorizon)
            case .data:
                let pinned = transactions.isProducersLast(batch)
                let retained: [Int]
                if transactions.isAborted(batch) {
                    retained = []
                } else {
                    retained = batch.records.indices.filter { r in
                        let record = batch.records[r]
                        // What the map did not reach stays as it is, for the pass that maps it.
                        guard record.offset < end else { return true }
                        guard let key = record.key, record.offset >= map.offset(of: key) ?? record.offset else {
                            return false
                        }
                        return !(record.isTombstone && horizonPassed)
                    }
                }
                if batch.isTransactional {
                    var transaction = open[batch.producerId] ?? (0, false)
                    transaction.survivors += retained.count
                    transaction.pinned = transaction.pinned || pinned
                    open[batch.producerId] = transaction
                }
                let keepsTombstone = retained.contains { batch.records[$0].isTombstone && batch.records[$0].offset < end }
                var stamp: Int64?
                if keepsTombstone {
                    if let horizon = batch.deleteHorizonMs {
                        note(horizon)
                    } else {
                        stamp = newHorizon
                        note(newHorizon)
                    }
                }
                if retained.count == batch.records.count { return stamp.map { .stampDeleteHorizon($0) } ?? .keep }
                if retained.isEmpty && !pinned { return .remove }
                return .keepRecords(retained, deleteHorizonMs: stamp)
            }
        }
    }
}
