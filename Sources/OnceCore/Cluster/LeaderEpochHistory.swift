/// Which leader epoch wrote which offsets of a partition: each epoch with the offset its leader
/// started at (the log end when it took the lease). A consumer whose position came from an older
/// leader asks for the end of that leader's epoch (OffsetForLeaderEpoch) and learns whether the
/// log it read was cut short after the change. The rules are Kafka's `LeaderEpochFileCache`:
/// `assign`, `truncateFromStart` and `endOffsetFor`, so a client gets the answer Kafka gives.
public struct LeaderEpochHistory: Sendable, Hashable {
    /// One epoch and the first offset its leader could write.
    public struct Entry: Sendable, Hashable {
        public var epoch: Int32
        public var startOffset: Int64

        public init(epoch: Int32, startOffset: Int64) {
            self.epoch = epoch
            self.startOffset = startOffset
        }
    }

    /// Ascending in both epoch and start offset: `assign` keeps it so.
    public private(set) var entries: [Entry] = []

    /// Kafka's `UNDEFINED_EPOCH` and `UNDEFINED_EPOCH_OFFSET`: the answer that carries no epoch.
    public static let undefinedEpoch: Int32 = -1
    public static let undefinedOffset: Int64 = -1

    public init() {}

    /// Replays epochs in the order they were taken.
    public init(_ taken: [Entry]) {
        for entry in taken { assign(epoch: entry.epoch, startOffset: entry.startOffset) }
    }

    public var latestEpoch: Int32? { entries.last?.epoch }

    /// Records that `epoch` began at `startOffset`. Entries that would break the order go first:
    /// an epoch taken while an older one wrote nothing shares its start offset, and the older one
    /// then owns no offsets at all, so it goes, as does any entry at the same or a newer epoch (a
    /// log cut back). The latest epoch again at the same or a later offset changes nothing.
    public mutating func assign(epoch: Int32, startOffset: Int64) {
        guard epoch >= 0, startOffset >= 0 else { return }
        if let latest = entries.last, latest.epoch == epoch, startOffset >= latest.startOffset { return }
        while let last = entries.last, last.epoch >= epoch || last.startOffset >= startOffset { entries.removeLast() }
        entries.append(Entry(epoch: epoch, startOffset: startOffset))
    }

    /// The history of a log whose first offsets were deleted (retention, DeleteRecords): entries
    /// wholly below `logStartOffset` go, and the epoch that held it now starts there.
    public func truncatedFromStart(_ logStartOffset: Int64) -> LeaderEpochHistory {
        let below = entries.prefix { $0.startOffset <= logStartOffset }
        guard let holder = below.last else { return self }
        var result = LeaderEpochHistory()
        result.entries = [Entry(epoch: holder.epoch, startOffset: logStartOffset)] + entries.dropFirst(below.count)
        return result
    }

    /// The end offset of `requested` (exclusive: where the next epoch began, or the log end for the
    /// latest epoch) and the epoch it belongs to: `requested` itself when it is known, else the
    /// largest smaller one. An epoch below the first known answers the first known start offset
    /// with the requested epoch (the offsets before it are gone); the undefined epoch, an epoch
    /// above every known one and an empty history answer (-1, -1).
    public func endOffset(for requested: Int32, logEndOffset: Int64) -> (epoch: Int32, endOffset: Int64) {
        let undefined = (Self.undefinedEpoch, Self.undefinedOffset)
        guard requested != Self.undefinedEpoch, let latest = entries.last else { return undefined }
        if latest.epoch == requested { return (requested, logEndOffset) }
        guard let higher = entries.firstIndex(where: { $0.epoch > requested }) else { return undefined }
        guard higher > 0 else { return (requested, entries[higher].startOffset) }
        return (entries[higher - 1].epoch, entries[higher].startOffset)
    }
}
