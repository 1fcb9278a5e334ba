extension SegmentPolicy {
    /// How many of the oldest segments (the last one active) a cleaner pass may take: sealed ones
    /// wholly below the high watermark (nothing a power loss may still erase is rewritten) and, by
    /// their largest timestamp, older than min.compaction.lag.ms.
    package static func cleanableSegmentCount(
        baseOffsets: [Int64], maxTimestamps: [Int64], highWatermark: Int64, config: TopicConfig, nowMs: Int64
    ) -> Int {
        let lag = config.minCompactionLagMs
        var count = 0
        while count + 1 < baseOffsets.count, baseOffsets[count + 1] <= highWatermark {
            if lag > 0 && nowMs - maxTimestamps[count] < lag { break }
            count += 1
        }
        return count
    }

    /// Whether a pass over the cleanable segments is due: the dirty ratio reached
    /// min.cleanable.dirty.ratio, the oldest dirty record is older than max.compaction.lag.ms, or
    /// the earliest delete horizon an earlier pass stamped has passed (Kafka waits for the next pass
    /// the dirt triggers; a partition nobody writes to would keep its tombstones for ever).
    package static func cleaningIsDue(
        cleanBytes: Int, dirtyBytes: Int, oldestDirtyTimestamp: Int64?, earliestDeleteHorizonMs: Int64,
        config: TopicConfig, nowMs: Int64
    ) -> Bool {
        let total = cleanBytes + dirtyBytes
        guard total > 0 else { return false }
        if earliestDeleteHorizonMs <= nowMs { return true }
        guard dirtyBytes > 0 else { return false }
        if Double(dirtyBytes) / Double(total) >= config.minCleanableDirtyRatio { return true }
        if config.maxCompactionLagMs < .max, let oldestDirtyTimestamp {
            return nowMs - oldestDirtyTimestamp > config.maxCompactionLagMs
        }
        return false
    }
}
