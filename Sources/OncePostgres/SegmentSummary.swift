import Foundation
import OnceStorage

/// What retention, timestamp lookups and ListOffsets need to know of a stretch of the log, without
/// its batches: a partition keeps one per segment, so its memory grows with the segment count, not
/// with the log. The table has no segments; they are how the file engine would have rolled this
/// leader's appends, and, for what an earlier leader wrote, cuts of `segment.bytes` in offset order.
struct SegmentSummary: TrimmableSegment, Sendable, Equatable {
    var baseOffset: Int64
    var size = 0
    var maxTimestamp: Int64 = -1
    var offsetOfMaxTimestamp: Int64 = -1
    var firstAppendMs: Int64?
    var lastAppendMs: Int64 = 0

    var stats: SegmentPolicy.Stats {
        .init(sizeInBytes: size, maxTimestamp: maxTimestamp, lastAppendMs: lastAppendMs)
    }

    mutating func add(baseOffset: Int64, maxTimestamp: Int64, size: Int, nowMs: Int64) {
        if maxTimestamp > self.maxTimestamp {
            self.maxTimestamp = maxTimestamp
            offsetOfMaxTimestamp = baseOffset
        }
        self.size += size
        if firstAppendMs == nil { firstAppendMs = nowMs }
        lastAppendMs = nowMs
    }
}

/// Wall-clock milliseconds, the unit of segment ages and `*.ms` configs.
func wallClockMillis() -> Int64 {
    Int64((Date().timeIntervalSince1970 * 1000).rounded(.down))
}

extension SegmentSummary {
    init(baseOffset: Int64) { self.baseOffset = baseOffset }
}
