import NIOCore

/// The newest batches of a partition, contiguous up to its log end: every batch not yet committed
/// (only memory holds it) and, within the cache's bytes, the committed ones before them, so a
/// consumer at the tail is served without a query.
struct RecentBatches {
    struct Batch {
        var baseOffset: Int64
        var lastOffset: Int64
        var maxTimestamp: Int64
        var bytes: ByteBuffer
    }

    private(set) var batches: [Batch] = []
    private(set) var bytes = 0
    /// The first offset held; the log end when nothing is.
    private(set) var start: Int64

    init(start: Int64) { self.start = start }

    mutating func append(_ batch: Batch) {
        if batches.isEmpty { start = batch.baseOffset }
        batches.append(batch)
        bytes += batch.bytes.readableBytes
    }

    /// Drops the oldest batches below `committedEnd` until the rest fit in `limit` bytes; returns
    /// the bytes freed. What is not committed stays, whatever its size: nothing else holds it.
    mutating func evict(toFit limit: Int, committedEnd: Int64, logEnd: Int64) -> Int {
        var count = 0
        var freed = 0
        while count < batches.count && bytes - freed > limit && batches[count].lastOffset < committedEnd {
            freed += batches[count].bytes.readableBytes
            count += 1
        }
        drop(count, logEnd: logEnd)
        return freed
    }

    /// Drops the batches that end below `offset` (retention, DeleteRecords); returns the bytes freed.
    mutating func drop(below offset: Int64, logEnd: Int64) -> Int {
        let count = batches.prefix { $0.lastOffset < offset }.count
        let freed = batches.prefix(count).reduce(0) { $0 + $1.bytes.readableBytes }
        drop(count, logEnd: logEnd)
        return freed
    }

    private mutating func drop(_ count: Int, logEnd: Int64) {
        guard count > 0 else { return }
        bytes -= batches.prefix(count).reduce(0) { $0 + $1.bytes.readableBytes }
        batches.removeFirst(count)
        start = batches.first?.baseOffset ?? logEnd
    }

    /// Whole batches from the one holding `offset` (or the next), as `PartitionLog.read` returns
    /// them; `first` says whether a batch larger than `maxBytes` may still go out.
    func read(from offset: Int64, maxBytes: Int, limitOffset: Int64, first: Bool = true) -> (ByteBuffer, count: Int) {
        var lo = 0
        var hi = batches.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if batches[mid].lastOffset < offset { lo = mid + 1 } else { hi = mid }
        }
        var out = ByteBuffer()
        var count = 0
        for batch in batches[lo...] {
            guard batch.lastOffset < limitOffset else { break }
            if (out.readableBytes > 0 || !first) && out.readableBytes + batch.bytes.readableBytes > maxBytes { break }
            out.writeImmutableBuffer(batch.bytes)
            count += 1
        }
        return (out, count)
    }

    /// The first batch at or after `from` and before `before` whose max timestamp reaches `timestamp`.
    func first(reaching timestamp: Int64, from: Int64, before: Int64) -> Batch? {
        batches.first { $0.lastOffset >= from && $0.baseOffset < before && $0.maxTimestamp >= timestamp }
    }
}
