import KafkaProtocol
import NIOCore
import OnceCore
import OnceStorage

/// Log compaction over the table: the file engine's three stages (`CleaningPlan`'s transaction
/// scan, offset map and filter) read the cleanable range batch by batch through `read`, so the
/// pass holds the plan's bounded state and one read chunk, never the range. The batches the
/// filter changes are rewritten or deleted in one database transaction, conditional on this
/// broker still holding the lease at its epoch (an ex-leader never cleans), so a reader's query
/// sees either the range before the pass or after it, never half of each. Offsets and each kept
/// batch's base and last offset stay as they were, so the lookup by base offset still finds
/// the batch holding an offset, or the one after a gap the pass left.
extension PostgresPartitionLog {
    public func setAbortMarkerRemovalHandler(_ handler: @escaping @Sendable ([CleaningPlan.AbortMarker]) -> Void) {
        abortMarkerRemoval.withLock { $0 = handler }
    }

    /// Whether this broker leads a compacted partition here, so its cleaner should pass over it.
    var isCleanable: Bool {
        state.withLock { $0.config.isCompacted && $0.leaderEpoch >= 0 && !$0.fenced && !$0.deleted }
    }

    private struct CleanableRange {
        var config: TopicConfig
        var segments: [SegmentSummary]
        var start: Int64
        var end: Int64
        var firstDirty: Int64
        var earliestDeleteHorizonMs: Int64
        var epoch: Int32

        func nextBase(after i: Int) -> Int64 { i + 1 < segments.count ? segments[i + 1].baseOffset : end }

        func segmentBase(of offset: Int64) -> Int64 {
            segments.last { $0.baseOffset <= offset }?.baseOffset ?? segments[0].baseOffset
        }
    }

    /// Most bytes of cleaned batches a pass sends in one statement of its transaction.
    static let cleanedBytesPerStatement = 1 << 20

    /// One pass; nil when this broker does not lead a compacted partition here.
    func clean(nowMs: Int64, dedupeBufferBytes: Int, on c: PostgresConnection, nodeId: Int32) throws -> CleaningReport? {
        guard let range = cleanableRange(nowMs: nowMs) else { return nil }
        var cleanBytes = 0
        var dirtyBytes = 0
        for (i, segment) in range.segments.enumerated() {
            if range.nextBase(after: i) <= range.firstDirty { cleanBytes += segment.size } else { dirtyBytes += segment.size }
        }
        let total = cleanBytes + dirtyBytes
        var report = CleaningReport(dirtyRatio: total > 0 ? Double(dirtyBytes) / Double(total) : 0)
        var oldestDirtyTimestamp: Int64?
        if dirtyBytes > 0, range.config.maxCompactionLagMs < .max {
            try forEachBatch(from: range.firstDirty, to: range.end, chunk: 1) { header, _ in
                oldestDirtyTimestamp = header.maxTimestamp
                return false
            }
        }
        guard SegmentPolicy.cleaningIsDue(
            cleanBytes: cleanBytes, dirtyBytes: dirtyBytes, oldestDirtyTimestamp: oldestDirtyTimestamp,
            earliestDeleteHorizonMs: range.earliestDeleteHorizonMs, config: range.config, nowMs: nowMs)
        else { return report }

        // Stage 1: headers only, for how the transactions ended.
        var scan = CleaningPlan.TransactionScan(firstDirty: range.firstDirty)
        try forEachBatch(from: range.start, to: range.end) { header, bytes in
            scan.read(try CleanedBatch.planBatch(header, bytes: bytes, withRecords: false), recordCount: Int(header.recordCount))
            report.bytesRead += bytes.readableBytes
            return true
        }
        // Stage 2: the dirty section's keys, until the map is full.
        var builder = CleaningPlan.MapBuilder(scan.transactions, firstDirty: range.firstDirty, mapBytes: dedupeBufferBytes)
        try forEachBatch(from: range.firstDirty, to: range.end) { header, bytes in
            builder.read(try CleanedBatch.planBatch(header, bytes: bytes))
            report.bytesRead += bytes.readableBytes
            return !builder.isDone
        }
        report.offsetMapBytes = builder.map.bytes
        // Stage 3: every batch decided in order; what changes goes to the open transaction in
        // statements of bounded size, and commits only while the lease is ours at our epoch.
        var filter = CleaningPlan.Filter(builder, nowMs: nowMs, deleteRetentionMs: range.config.deleteRetentionMs)
        var sizeChanges: [Int64: Int] = [:]
        var rewritten: [(Int64, [UInt8])] = []
        var removed: [Int64] = []
        var pendingBytes = 0
        var changed = false
        let (topic, partition) = (self.topic, self.partition)
        func send() throws {
            guard !rewritten.isEmpty || !removed.isEmpty else { return }
            if !removed.isEmpty {
                try c.query(
                    "DELETE FROM batches WHERE topic = $1 AND partition = $2 AND base_offset = ANY($3::bigint[])",
                    [.string(topic), .int32(partition), .int64s(removed)])
            }
            if !rewritten.isEmpty {
                try c.query(
                    """
                    UPDATE batches b SET bytes = x.data FROM unnest($3::bigint[], $4::bytea[]) AS x(base, data)
                    WHERE b.topic = $1 AND b.partition = $2 AND b.base_offset = x.base
                    """,
                    [.string(topic), .int32(partition), .int64s(rewritten.map(\.0)), .datas(rewritten.map(\.1))])
            }
            rewritten = []
            removed = []
            pendingBytes = 0
        }
        try c.execute("BEGIN")
        do {
            let lease = try c.query(
                "SELECT 1 FROM partition_leases WHERE topic = $1 AND partition = $2 AND holder = $3 AND leader_epoch = $4 FOR SHARE",
                [.string(topic), .int32(partition), .int32(nodeId), .int32(range.epoch)])
            guard lease.count == 1 else {
                try c.execute("ROLLBACK")
                return report
            }
            try forEachBatch(from: range.start, to: range.end) { header, bytes in
                let outcome = filter.decide(try CleanedBatch.planBatch(header, bytes: bytes))
                guard outcome != .keep else { return true }
                changed = true
                let cleaned = try CleanedBatch.apply(outcome, to: bytes)
                sizeChanges[range.segmentBase(of: header.baseOffset), default: 0] += (cleaned?.readableBytes ?? 0) - bytes.readableBytes
                if let cleaned {
                    rewritten.append((header.baseOffset, Array(cleaned.readableBytesView)))
                    pendingBytes += cleaned.readableBytes
                    report.bytesWritten += cleaned.readableBytes
                } else {
                    removed.append(header.baseOffset)
                }
                if pendingBytes >= Self.cleanedBytesPerStatement || removed.count >= 10_000 { try send() }
                return true
            }
            try send()
            report.peakStateBytes = max(scan.peakBytes, filter.peakBytes)
            let markers = filter.removedAbortMarkers
            if changed {
                // Memory drops its copies of the range first, so from the commit on every read
                // of it is a query that sees the cleaned rows.
                let freed = state.withLock { s in s.recent.drop(below: range.end, logEnd: s.logEnd) }
                stats.cached(-freed)
                try abortMarkerRemoval.withLock { handler in
                    if !markers.isEmpty { handler?(markers) }
                    try c.execute("COMMIT")
                }
            } else {
                try c.execute("ROLLBACK")
            }
        } catch {
            try? c.execute("ROLLBACK")
            throw error
        }
        let cleanedUpTo = max(range.firstDirty, min(range.end, filter.end))
        let horizon = filter.earliestDeleteHorizonMs ?? .max
        let freed = state.withLock { s -> Int in
            for i in s.segments.indices { s.segments[i].size += sizeChanges[s.segments[i].baseOffset] ?? 0 }
            s.firstDirtyOffset = max(s.firstDirtyOffset, cleanedUpTo)
            s.earliestDeleteHorizonMs = horizon
            // A batch cached between the drop and the commit is a pre-pass copy.
            return changed ? s.recent.drop(below: range.end, logEnd: s.logEnd) : 0
        }
        stats.cached(-freed)
        if changed {
            report.cleaned = true
            report.segmentsReplaced = Set(sizeChanges.keys).count
            report.abortMarkersRemoved = filter.removedAbortMarkers.count
        }
        return report
    }

    /// The sealed, committed segments from the log start a pass may take, after rolling an aged
    /// active segment so an idle partition becomes cleanable.
    private func cleanableRange(nowMs: Int64) -> CleanableRange? {
        state.withLock { s in
            guard !s.deleted, !s.fenced, s.leaderEpoch >= 0, s.config.isCompacted else { return nil }
            SegmentPolicy.rollAgedActive(&s.segments, logEnd: s.logEnd, config: s.config, nowMs: nowMs)
            let count = SegmentPolicy.cleanableSegmentCount(
                baseOffsets: s.segments.map(\.baseOffset), maxTimestamps: s.segments.map(\.maxTimestamp),
                highWatermark: s.committedEnd, config: s.config, nowMs: nowMs)
            return CleanableRange(
                config: s.config, segments: Array(s.segments.prefix(count)), start: s.logStart,
                end: s.segments[count].baseOffset, firstDirty: max(s.firstDirtyOffset, s.logStart),
                earliestDeleteHorizonMs: s.earliestDeleteHorizonMs, epoch: s.leaderEpoch)
        }
    }

    /// Every batch in `[from, end)` in order, read a chunk at a time, until `body` says stop.
    private func forEachBatch(
        from: Int64, to end: Int64, chunk: Int = 1 << 20, _ body: (RecordBatchHeader, ByteBuffer) throws -> Bool
    ) throws {
        var offset = from
        while offset < end {
            let buffer = try read(from: offset, maxBytes: chunk, limitOffset: end)
            var position = buffer.readerIndex
            var advanced = false
            while position < buffer.writerIndex {
                let header = try RecordBatchHeader(reading: buffer, at: position)
                let bytes = buffer.getSlice(at: position, length: header.totalSize)!
                position += header.totalSize
                guard header.lastOffset >= offset else { continue }
                offset = header.lastOffset + 1
                advanced = true
                guard try body(header, bytes) else { return }
            }
            guard advanced else { return }
        }
    }
}
