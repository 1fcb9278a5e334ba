/// Roll and retention decisions, shared by every engine so they delete and roll at the same
/// points: the conformance suite checks one behaviour, not one per engine.
package enum SegmentPolicy {
    /// What retention needs to know about a segment.
    package struct Stats {
        package var sizeInBytes: Int
        /// Largest batch max timestamp in the segment, -1 when none carries one.
        package var maxTimestamp: Int64
        /// Wall time of the last append, the fallback age when batches carry no timestamps.
        package var lastAppendMs: Int64

        package init(sizeInBytes: Int, maxTimestamp: Int64, lastAppendMs: Int64) {
            self.sizeInBytes = sizeInBytes
            self.maxTimestamp = maxTimestamp
            self.lastAppendMs = lastAppendMs
        }
    }

    /// Whether the active segment must roll before `incomingBytes` more are appended. An empty
    /// segment never rolls, so a batch larger than segment.bytes still gets a home.
    package static func shouldRoll(
        activeSize: Int, activeBaseOffset: Int64, firstAppendMs: Int64?, incomingBytes: Int,
        incomingLastOffset: Int64, config: TopicConfig, nowMs: Int64
    ) -> Bool {
        guard activeSize > 0 else { return false }
        if activeSize + incomingBytes > config.segmentBytes { return true }
        if let firstAppendMs, nowMs - firstAppendMs > config.segmentMs { return true }
        // Index entries hold offsets relative to the segment base as int32.
        return incomingLastOffset - activeBaseOffset > Int64(Int32.max)
    }

    /// Whether retention rolls an aged active segment (so a later pass can delete it).
    package static func activeSegmentAged(activeSize: Int, firstAppendMs: Int64?, config: TopicConfig, nowMs: Int64) -> Bool {
        guard activeSize > 0, let firstAppendMs else { return false }
        return nowMs - firstAppendMs > config.segmentMs
    }

    /// How many of the oldest segments (oldest first, the last one active) retention deletes.
    /// Time retention may include a non-empty active segment, in which case the caller rolls first
    /// so the partition keeps an (empty) active segment; size retention never counts the active one.
    package static func segmentsToDelete(_ segments: [Stats], config: TopicConfig, nowMs: Int64) -> Int {
        // A compact-only topic keeps its latest values however old: the cleaner shrinks it instead.
        guard !segments.isEmpty, config.deletesByRetention else { return 0 }
        var count = 0
        if config.retentionMs >= 0 {
            while count < segments.count {
                let segment = segments[count]
                let isActive = count == segments.count - 1
                if isActive && segment.sizeInBytes == 0 { break }
                let age = segment.maxTimestamp >= 0 ? segment.maxTimestamp : segment.lastAppendMs
                guard nowMs - age > config.retentionMs else { break }
                count += 1
            }
        }
        if config.retentionBytes >= 0 {
            var excess = Int64(segments[count...].reduce(0) { $0 + $1.sizeInBytes }) - config.retentionBytes
            while count < segments.count - 1 && excess - Int64(segments[count].sizeInBytes) >= 0 {
                excess -= Int64(segments[count].sizeInBytes)
                count += 1
            }
        }
        return count
    }
}
