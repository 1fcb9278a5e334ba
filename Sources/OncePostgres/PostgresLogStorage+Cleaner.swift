import Logging
import OnceStorage

/// Compaction on the postgres engine: each broker cleans the compacted partitions it leads (see
/// `PostgresPartitionLog+Compaction.swift`).
extension PostgresLogStorage: LogCleaning {
    public func startCleaner(backoffMs: Int64, maxBytesPerSecond: Double?, dedupeBufferBytes: Int, excluding excluded: Set<String>) {
        let timer = FlushTimer(every: max(backoffMs, 1), label: "once.storage.postgres-cleaner") { [weak self] in
            guard let self else { return }
            self.runCleanerPass(nowMs: wallClockMillis(), dedupeBufferBytes: dedupeBufferBytes, excluding: excluded)
        }
        let previous = cleaner.timer.withLock { current in
            defer { current = timer }
            return current
        }
        previous?.cancelAndWait()
    }

    public var cleanerStats: CleanerStats { cleaner.statsBox.value.withLock { $0 } }

    public func runCleanerPass(nowMs: Int64, dedupeBufferBytes: Int) -> [CleaningReport] {
        runCleanerPass(nowMs: nowMs, dedupeBufferBytes: dedupeBufferBytes, excluding: [])
    }

    @discardableResult
    func runCleanerPass(nowMs: Int64, dedupeBufferBytes: Int, excluding excluded: Set<String>) -> [CleaningReport] {
        var reports: [CleaningReport] = []
        let logs = loadedPartitions().compactMap { $0 as? PostgresPartitionLog }.filter { $0.isCleanable && !excluded.contains($0.topic) }
        for log in logs {
            do {
                // What was appended before the pass may be cleaned once it committed.
                if log.hasPending { try log.sync() }
                guard let report = try cleaner.run({ [nodeId] c in
                    try log.clean(nowMs: nowMs, dedupeBufferBytes: dedupeBufferBytes, on: c, nodeId: nodeId)
                }) else { continue }
                reports.append(report)
                cleaner.statsBox.record(report, topic: log.topic, partition: log.partition)
            } catch {
                logger.warning(
                    "cleaning a partition failed; the next pass retries",
                    metadata: ["partition": "\(log.topic)-\(log.partition)", "error": "\(error)"])
            }
        }
        cleaner.statsBox.value.withLock { $0.lastRunMs = wallClockMillis() }
        return reports
    }
}
