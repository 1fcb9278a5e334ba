import Synchronization

/// What the log cleaner has done since the storage opened, for `/metrics`.
public struct CleanerStats: Sendable, Equatable {
    /// Bytes the cleaner read from segments (Kafka's cleaner counts these as cleaned).
    public var bytesRead: Int64 = 0
    public var bytesWritten: Int64 = 0
    public var segmentsReplaced: Int64 = 0
    /// Abort markers removed once their transactions had no record left and their horizon passed.
    public var abortMarkersRemoved: Int64 = 0
    /// Passes over a partition that swapped cleaned segments in.
    public var cleans: Int64 = 0
    /// The largest offset map a pass has used: never above the configured bound.
    public var largestOffsetMapBytes: Int64 = 0
    /// The most state a pass has held (map, transactions, producers): bounded by the map's bound,
    /// whatever the number of records.
    public var largestPassStateBytes: Int64 = 0
    /// Wall time the last pass ended; nil before the first one.
    public var lastRunMs: Int64?
    /// Each compacted partition's dirty ratio as the last pass saw it.
    public var dirtyRatios: [PartitionKey: Double] = [:]

    public struct PartitionKey: Sendable, Hashable, Comparable {
        public var topic: String
        public var partition: Int32
        public static func < (a: Self, b: Self) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
    }

    public init() {}
}

/// Engines that compact topics with cleanup.policy=compact; the broker starts their cleaner and
/// reads its stats.
public protocol LogCleaning: Sendable {
    /// Runs one pass over every compacted partition every `backoffMs` on a thread of its own,
    /// reading and writing at most `maxBytesPerSecond` (nil: no limit), with an offset map of at most
    /// `dedupeBufferBytes` per pass. Closing the storage stops it. Topics in `excluded` are left
    /// alone: their owners shrink them by snapshots of their own.
    func startCleaner(backoffMs: Int64, maxBytesPerSecond: Double?, dedupeBufferBytes: Int, excluding excluded: Set<String>)
    var cleanerStats: CleanerStats { get }
    /// One pass over every compacted partition now, unthrottled, as the cleaner's thread runs it;
    /// the simulator drives it between steps.
    @discardableResult
    func runCleanerPass(nowMs: Int64, dedupeBufferBytes: Int) -> [CleaningReport]
}

extension CleanerStatsBox {
    package func record(_ report: CleaningReport, topic: String, partition: Int32) {
        value.withLock { stats in
            stats.bytesRead += Int64(report.bytesRead)
            stats.bytesWritten += Int64(report.bytesWritten)
            stats.segmentsReplaced += Int64(report.segmentsReplaced)
            stats.abortMarkersRemoved += Int64(report.abortMarkersRemoved)
            if report.cleaned { stats.cleans += 1 }
            stats.largestOffsetMapBytes = max(stats.largestOffsetMapBytes, Int64(report.offsetMapBytes))
            stats.largestPassStateBytes = max(stats.largestPassStateBytes, Int64(report.peakStateBytes))
            stats.dirtyRatios[.init(topic: topic, partition: partition)] = report.dirtyRatio
        }
    }
}

/// One place for the stats, so a scrape never waits on a pass.
package final class CleanerStatsBox: Sendable {
    package let value = Mutex(CleanerStats())

    package init() {}
}

extension FileLogStorage: LogCleaning {
    /// Kafka's `log.cleaner.dedupe.buffer.size` default: 128 MiB, about 5.6 million keys a pass.
    public static let defaultDedupeBufferBytes = 128 << 20

    public func startCleaner(backoffMs: Int64, maxBytesPerSecond: Double?, dedupeBufferBytes: Int, excluding excluded: Set<String>) {
        let throttle = CleanerThrottle(maxBytesPerSecond: maxBytesPerSecond)
        let timer = FlushTimer(every: max(backoffMs, 1), label: "once.storage.cleaner") { [weak self] in
            _ = self?.cleanCompactedLogs(
                nowMs: currentTimeMillis(), throttle: throttle, dedupeBufferBytes: dedupeBufferBytes, excluding: excluded)
        }
        let previous: (timer: FlushTimer, throttle: CleanerThrottle)? = state.withLock { s in
            guard s.isOpen else { return (timer, throttle) }
            defer { s.cleaner = (timer, throttle) }
            return s.cleaner
        }
        previous?.throttle.stop()
        previous?.timer.cancelAndWait()
    }

    public var cleanerStats: CleanerStats { cleanerStatsBox.value.withLock { $0 } }

    public func runCleanerPass(nowMs: Int64, dedupeBufferBytes: Int) -> [CleaningReport] {
        cleanCompactedLogs(nowMs: nowMs, throttle: CleanerThrottle(maxBytesPerSecond: nil), dedupeBufferBytes: dedupeBufferBytes)
    }

    /// One pass over every compacted partition, opening those nobody has used since the restart:
    /// their dirty data still needs cleaning.
    @discardableResult
    func cleanCompactedLogs(
        nowMs: Int64, throttle: CleanerThrottle, dedupeBufferBytes: Int = defaultDedupeBufferBytes,
        excluding excluded: Set<String> = []
    ) -> [CleaningReport] {
        throttle.reset()
        let slots = state.withLock { s in s.isOpen ? s.topics.values.flatMap(\.partitions) : [] }
        var reports: [CleaningReport] = []
        for slot in slots where slot.config.isCompacted && !excluded.contains(slot.topic) {
            guard isOpen else { break }
            do {
                let log = try slot.open()
                guard let report = try log.clean(
                    nowMs: nowMs, throttle: throttle, dedupeBufferBytes: dedupeBufferBytes, shouldContinue: { self.isOpen }) else {
                    continue
                }
                reports.append(report)
                cleanerStatsBox.record(report, topic: slot.topic, partition: slot.partition)
            } catch StorageError.unknownTopic {
                continue
            } catch {
                logger.error("cleaning failed", metadata: ["partition": "\(slot.topic)-\(slot.partition)", "error": "\(error)"])
            }
        }
        cleanerStatsBox.value.withLock { $0.lastRunMs = currentTimeMillis() }
        return reports
    }
}
