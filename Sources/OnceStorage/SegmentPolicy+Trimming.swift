/// What the trimming rules need of an in-memory segment: the memory engine's segments and the
/// postgres engine's summaries conform, so both drop, roll and delete at the same points (the
/// file engine applies the same `SegmentPolicy` decisions to its files).
package protocol TrimmableSegment {
    init(baseOffset: Int64)
    var baseOffset: Int64 { get }
    var size: Int { get }
    var firstAppendMs: Int64? { get }
    var stats: SegmentPolicy.Stats { get }
}

extension SegmentPolicy {
    /// Drops the segments wholly below `offset`; the one holding it, and the active one, stay.
    /// Returns how many went.
    @discardableResult
    package static func dropSegments<S: TrimmableSegment>(_ segments: inout [S], below offset: Int64) -> Int {
        var count = 0
        while count + 1 < segments.count && segments[count + 1].baseOffset <= offset { count += 1 }
        segments.removeFirst(count)
        return count
    }

    /// Follows a log start moved to `offset` (DeleteRecords, a trim): when everything is below it,
    /// the active segment goes too and an empty one at `offset` takes its place.
    package static func advanceStart<S: TrimmableSegment>(_ segments: inout [S], to offset: Int64, logEnd: Int64) {
        if offset == logEnd && segments[segments.count - 1].baseOffset < offset {
            segments.append(S(baseOffset: offset))
        }
        dropSegments(&segments, below: offset)
    }

    /// Rolls an aged, non-empty active segment, so retention or the cleaner can then take it.
    package static func rollAgedActive<S: TrimmableSegment>(
        _ segments: inout [S], logEnd: Int64, config: TopicConfig, nowMs: Int64
    ) {
        let active = segments[segments.count - 1]
        if activeSegmentAged(activeSize: active.size, firstAppendMs: active.firstAppendMs, config: config, nowMs: nowMs) {
            segments.append(S(baseOffset: logEnd))
        }
    }

    /// One retention pass: rolls an aged active segment, then deletes what `segmentsToDelete`
    /// names, keeping an empty active segment when that was all of them. Returns how many went.
    @discardableResult
    package static func applyRetention<S: TrimmableSegment>(
        _ segments: inout [S], logEnd: Int64, config: TopicConfig, nowMs: Int64
    ) -> Int {
        rollAgedActive(&segments, logEnd: logEnd, config: config, nowMs: nowMs)
        let count = segmentsToDelete(segments.map(\.stats), config: config, nowMs: nowMs)
        if count == segments.count { segments.append(S(baseOffset: logEnd)) }
        segments.removeFirst(count)
        return count
    }
}
