/// Log compaction's rules, as Kafka's LogCleaner applies them, over plain data: which records and
/// batches of a partition's cleanable range survive. The storage engine reads the batches, feeds
/// them to this, and rewrites what it is told; it decides nothing itself, so every engine cleans
/// alike.
///
/// A pass streams the range three times, holding only bounded state, as Kafka's cleaner does:
/// a `TransactionScan` over batch headers finds how each transaction ended (only aborted ones are
/// kept, as Kafka's aborted-transaction index holds them) and each producer's last batch; a
/// `MapBuilder` fills the fixed-size `OffsetMap` from the dirty section until it is full; a
/// `Filter` then decides batch by batch. Nothing per record outlives the batch being read, so a
/// backlog of any size is cleaned in the map's memory, a map-full's worth per pass.
///
/// The range must start at the log start, so every transaction's data lies in it before its
/// marker. Records at or after the first transaction without a marker in the range (the range's
/// last stable offset) are kept untouched and do not count as the latest value of their key: a
/// read_committed consumer cannot see them yet, so what it can see must not lose anything to them.
///
/// Tombstones and commit markers go in two passes (KIP-534): the first pass that finds a tombstone
/// to keep, or a commit marker whose transaction has no record left, stamps the batch with a delete
/// horizon (now plus delete.retention.ms); a pass after that horizon removes them. The horizon
/// lives in the batch, so a restart or a crash does not move it. Abort markers go the same way, as
/// Kafka's do; the pass names them (`AbortMarker`) so the engine has the broker's aborted-transaction
/// index forget their transactions before the cleaned log is served.
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
        /// A data batch's records; the transaction scan needs none, so engines may leave them out
        /// there and spare the decompression.
        public var records: [Record]
        /// The delete horizon an earlier pass stamped on the batch (KIP-534), nil before.
        public var deleteHorizonMs: Int64?
        public init(
            baseOffset: Int64, lastOffset: Int64, producerId: Int64 = -1, isTransactional: Bool = false,
            kind: Kind = .data, records: [Record], deleteHorizonMs: Int64? = nil
        ) {
            self.baseOffset = baseOffset
            self.lastOffset = lastOffset
            self.producerId = producerId
            self.isTransactional = isTransactional
            self.kind = kind
            self.records = records
            self.deleteHorizonMs = deleteHorizonMs
        }
    }

    /// An abort marker a pass removes: its transaction leaves the aborted-transaction index too
    /// (`ProducerStateTable.abortMarkersRemoved`).
    public struct AbortMarker: Sendable, Hashable {
        public var producerId: Int64
        public var offset: Int64
        public init(producerId: Int64, offset: Int64) {
            self.producerId = producerId
            self.offset = offset
        }
    }

    public enum Outcome: Sendable, Equatable {
        /// Unchanged.
        case keep
        /// Rewritten with only the records at these indexes, keeping its base and last offset and
        /// its producer fields; possibly none, when the batch stays only as its producer's last.
        /// With a delete horizon the batch is stamped with it; without, it keeps the one it has.
        case keepRecords([Int], deleteHorizonMs: Int64? = nil)
        /// Every record kept, the batch stamped with this delete horizon.
        case stampDeleteHorizon(Int64)
        /// Removed from the log.
        case remove
    }

    /// What a pass over batches held in memory does to them.
    public struct Plan: Sendable, Equatable {
        /// One per batch, in order.
        public var outcomes: [Outcome]
        /// The first offset this plan leaves dirty: the first of an undecided transaction, or the
        /// first record whose key did not fit in the map; nil when everything given was cleaned.
        public var end: Int64?
        /// The size of the offset map the plan used.
        public var mapBytes: Int
        /// The earliest delete horizon of a tombstone or marker left in the cleaned part: the
        /// next pass is due then even if nothing new is written. Nil when none is left.
        public var earliestDeleteHorizonMs: Int64?
        /// The abort markers the outcomes remove.
        public var removedAbortMarkers: [AbortMarker] = []
    }

    /// One outcome per batch, in order, as a pass with a map of unbounded size would decide.
    public static func outcomes(_ batches: [Batch], nowMs: Int64, deleteRetentionMs: Int64) -> [Outcome] {
        plan(batches, firstDirty: 0, mapBytes: .max, nowMs: nowMs, deleteRetentionMs: deleteRetentionMs).outcomes
    }

    /// The plan for batches (in offset order, from the log start) whose records before `firstDirty`
    /// were cleaned by earlier passes, with an offset map of at most `mapBytes`: the three stages
    /// run over an array, for engines that hold their log in memory and for tests.
    public static func plan(
        _ batches: [Batch], firstDirty: Int64, mapBytes: Int, nowMs: Int64, deleteRetentionMs: Int64
    ) -> Plan {
        var scan = TransactionScan(firstDirty: firstDirty)
        for batch in batches { scan.read(batch, recordCount: batch.records.count) }
        var builder = MapBuilder(scan.transactions, firstDirty: firstDirty, mapBytes: mapBytes)
        for batch in batches where !builder.isDone { builder.read(batch) }
        var filter = Filter(builder, nowMs: nowMs, deleteRetentionMs: deleteRetentionMs)
        let outcomes = batches.map { filter.decide($0) }
        return Plan(
            outcomes: outcomes, end: builder.end == .max ? nil : builder.end, mapBytes: builder.map.bytes,
            earliestDeleteHorizonMs: filter.earliestDeleteHorizonMs, removedAbortMarkers: filter.removedAbortMarkers)
    }
}
