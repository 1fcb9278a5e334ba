/// Offsets committed inside transactions (TxnOffsetCommit), held per producer until the
/// transaction's marker in `__consumer_offsets` applies them (COMMIT) or drops them (ABORT), and
/// the log position behind every committed offset, because Kafka keeps the newest commit record:
/// a transaction's offset written before a plain commit of the same partition loses to it, even
/// though its COMMIT marker comes later.
///
/// One rule for the live coordinator and for replaying the log: both feed it records with their
/// positions (log offsets; snapshot records get positions below any log offset) in log order.
public struct TransactionalOffsets: Sendable, Equatable {
    /// One offset a transaction committed, with the position of its record.
    public struct Pending: Sendable, Equatable {
        public var group: String
        public var partition: GroupPartition
        public var offset: CommittedOffset
        public var position: Int64
        public init(group: String, partition: GroupPartition, offset: CommittedOffset, position: Int64) {
            self.group = group
            self.partition = partition
            self.offset = offset
            self.position = position
        }
    }

    /// Undecided offsets by producer id, in log order.
    public private(set) var pending: [Int64: [Pending]] = [:]
    /// Position of the record behind each group's committed offset.
    private var positions: [String: [GroupPartition: Int64]] = [:]

    public init() {}

    /// A plain commit's record (or an applied transactional one) now decides the partition's offset.
    public mutating func committed(group: String, partition: GroupPartition, position: Int64) {
        positions[group, default: [:]][partition] = position
    }

    /// The partition's offset was removed (OffsetDelete, expiry, a deleted group or topic); as in
    /// Kafka, undecided transactional offsets for it go too.
    public mutating func removed(group: String, partition: GroupPartition) {
        positions[group]?[partition] = nil
        if positions[group]?.isEmpty == true { positions[group] = nil }
        for (producerId, offsets) in pending {
            let kept = offsets.filter { $0.group != group || $0.partition != partition }
            pending[producerId] = kept.isEmpty ? nil : kept
        }
    }

    /// A TxnOffsetCommit's records were written under the producer's id.
    public mutating func transactionalCommitted(producerId: Int64, _ offsets: [Pending]) {
        guard !offsets.isEmpty else { return }
        pending[producerId, default: []] += offsets
    }

    /// The producer's transaction marker was written: on COMMIT, the offsets newer than each
    /// partition's current one, by group, to apply; on ABORT, nothing.
    public mutating func markerWritten(producerId: Int64, commit: Bool) -> [String: [GroupPartition: CommittedOffset]] {
        guard let decided = pending.removeValue(forKey: producerId), commit else { return [:] }
        var applied: [String: [GroupPartition: CommittedOffset]] = [:]
        for entry in decided where entry.position > positions[entry.group]?[entry.partition] ?? .min {
            positions[entry.group, default: [:]][entry.partition] = entry.position
            applied[entry.group, default: [:]][entry.partition] = entry.offset
        }
        return applied
    }

    /// Undecided offsets that can still win, by producer, for a snapshot: one older than its
    /// partition's committed offset would lose on COMMIT anyway, and the snapshot lists pending
    /// records after every committed one, where they would look newer.
    public var pendingThatCanWin: [Int64: [Pending]] {
        pending.compactMapValues { offsets in
            let live = offsets.filter { $0.position > positions[$0.group]?[$0.partition] ?? .min }
            return live.isEmpty ? nil : live
        }
    }

    /// Whether a group has undecided transactional offsets for the partition (OffsetFetch with
    /// requireStable answers UNSTABLE_OFFSET_COMMIT for it).
    public func unstablePartitions(group: String) -> Set<GroupPartition> {
        var unstable = Set<GroupPartition>()
        for offsets in pending.values {
            for entry in offsets where entry.group == group { unstable.insert(entry.partition) }
        }
        return unstable
    }
}
