import KafkaProtocol
import NIOCore
import OnceCore

/// Log compaction for the memory engine: the file engine's rules (`SegmentPolicy`, `CleaningPlan`,
/// `CleanedBatch`) over batches held in memory, so the simulator and the conformance suite clean
/// as the broker does. Each source segment is replaced by its cleaned self; the swap happens under
/// the lock only if retention or DeleteRecords left the sources alone meanwhile.
extension MemoryPartitionLog {
    var isCompacted: Bool { state.withLock { $0.config.isCompacted } }

    public func setAbortMarkerRemovalHandler(_ handler: @escaping @Sendable ([CleaningPlan.AbortMarker]) -> Void) {
        abortMarkerRemoval.withLock { $0 = handler }
    }

    func clean(nowMs: Int64, dedupeBufferBytes: Int) throws -> CleaningReport? {
        // An idle partition's aged active segment rolls, so it becomes cleanable.
        state.withLock { s in
            if s.config.isCompacted { SegmentPolicy.rollAgedActive(&s.segments, logEnd: s.logEndOffset, config: s.config, nowMs: nowMs) }
        }
        let taken: (config: TopicConfig, segments: [Segment], end: Int64, firstDirty: Int64, horizon: Int64)? = state.withLock { s in
            guard !s.deleted, s.config.isCompacted else { return nil }
            let highWatermark = flushPolicy.fetchableEnd(logEnd: s.logEndOffset, durable: s.durableOffset)
            let count = SegmentPolicy.cleanableSegmentCount(
                baseOffsets: s.segments.map(\.baseOffset), maxTimestamps: s.segments.map(\.maxTimestamp),
                highWatermark: highWatermark, config: s.config, nowMs: nowMs)
            return (
                s.config, Array(s.segments.prefix(count)), s.segments[count].baseOffset, max(s.firstDirtyOffset, s.logStartOffset),
                s.earliestDeleteHorizonMs
            )
        }
        guard let (config, segments, end, firstDirty, horizon) = taken else { return nil }
        var cleanBytes = 0
        var dirtyBytes = 0
        var oldestDirtyTimestamp: Int64?
        for segment in segments {
            for batch in segment.batches {
                if batch.lastOffset < firstDirty {
                    cleanBytes += batch.bytes.readableBytes
                } else {
                    dirtyBytes += batch.bytes.readableBytes
                    if oldestDirtyTimestamp == nil { oldestDirtyTimestamp = batch.maxTimestamp }
                }
            }
        }
        let total = cleanBytes + dirtyBytes
        var report = CleaningReport(dirtyRatio: total > 0 ? Double(dirtyBytes) / Double(total) : 0)
        guard SegmentPolicy.cleaningIsDue(
            cleanBytes: cleanBytes, dirtyBytes: dirtyBytes, oldestDirtyTimestamp: oldestDirtyTimestamp,
            earliestDeleteHorizonMs: horizon, config: config, nowMs: nowMs)
        else { return report }

        let stored = segments.flatMap(\.batches)
        let batches = try stored.map { batch in
            try CleanedBatch.planBatch(try RecordBatchHeader(reading: batch.bytes, at: batch.bytes.readerIndex), bytes: batch.bytes)
        }
        let plan = CleaningPlan.plan(
            batches, firstDirty: firstDirty, mapBytes: dedupeBufferBytes, nowMs: nowMs, deleteRetentionMs: config.deleteRetentionMs)
        report.bytesRead = total
        report.offsetMapBytes = plan.mapBytes
        report.peakStateBytes = plan.mapBytes
        var cleaned = segments
        var next = 0
        for i in cleaned.indices {
            let sources = cleaned[i].batches
            cleaned[i].batches = []
            cleaned[i].size = 0
            cleaned[i].maxTimestamp = -1
            cleaned[i].offsetOfMaxTimestamp = -1
            for source in sources {
                defer { next += 1 }
                if plan.outcomes[next] != .keep { report.segmentsReplaced = 1 }
                guard let bytes = try CleanedBatch.apply(plan.outcomes[next], to: source.bytes) else { continue }
                cleaned[i].batches.append(StoredBatch(
                    baseOffset: source.baseOffset, lastOffset: source.lastOffset, maxTimestamp: source.maxTimestamp, bytes: bytes))
                cleaned[i].size += bytes.readableBytes
                if source.maxTimestamp > cleaned[i].maxTimestamp {
                    cleaned[i].maxTimestamp = source.maxTimestamp
                    cleaned[i].offsetOfMaxTimestamp = source.baseOffset
                }
            }
        }
        let changed = report.segmentsReplaced > 0
        let cleanedUpTo = max(firstDirty, min(end, plan.end ?? end))
        return abortMarkerRemoval.withLock { handler in
            if !plan.removedAbortMarkers.isEmpty { handler?(plan.removedAbortMarkers) }
            return swap(segments, with: cleaned, changed: changed, end: end, cleanedUpTo: cleanedUpTo, plan: plan, report: report)
        }
    }

    private func swap(
        _ segments: [Segment], with cleaned: [Segment], changed: Bool, end: Int64, cleanedUpTo: Int64,
        plan: CleaningPlan.Plan, report: CleaningReport
    ) -> CleaningReport {
        var report = report
        return state.withLock { s in
            // Retention or DeleteRecords took a source meanwhile: this pass is void.
            guard !s.deleted, s.segments.count > segments.count,
                zip(s.segments, segments).allSatisfy({ $0.baseOffset == $1.baseOffset && $0.batches.count == $1.batches.count })
            else { return report }
            if changed {
                s.segments.replaceSubrange(0..<segments.count, with: cleaned)
                report.cleaned = true
                report.abortMarkersRemoved = plan.removedAbortMarkers.count
                report.segmentsReplaced = segments.count
                report.bytesWritten = cleaned.reduce(0) { $0 + $1.size }
                // The cleaned part survives a power cut, as the file engine's fsynced swap does.
                s.durableOffset = max(s.durableOffset, end)
            }
            s.firstDirtyOffset = max(s.firstDirtyOffset, cleanedUpTo)
            s.earliestDeleteHorizonMs = plan.earliestDeleteHorizonMs ?? .max
            return report
        }
    }
}
