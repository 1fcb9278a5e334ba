import Synchronization

extension MemoryLogStorage: LogCleaning {
    public func startCleaner(backoffMs: Int64, maxBytesPerSecond: Double?, dedupeBufferBytes: Int, excluding excluded: Set<String>) {
        let timer = FlushTimer(every: max(backoffMs, 1), label: "once.storage.memory-cleaner") { [weak self] in
            guard let self else { return }
            self.runCleanerPass(nowMs: self.clock(), dedupeBufferBytes: dedupeBufferBytes, excluding: excluded)
        }
        let previous = cleaner.withLock { current in
            defer { current = timer }
            return current
        }
        previous?.cancelAndWait()
    }

    public var cleanerStats: CleanerStats { cleanerStatsBox.value.withLock { $0 } }

    public func runCleanerPass(nowMs: Int64, dedupeBufferBytes: Int) -> [CleaningReport] {
        runCleanerPass(nowMs: nowMs, dedupeBufferBytes: dedupeBufferBytes, excluding: [])
    }

    @discardableResult
    func runCleanerPass(nowMs: Int64, dedupeBufferBytes: Int, excluding excluded: Set<String>) -> [CleaningReport] {
        var reports: [CleaningReport] = []
        for log in compactedPartitions() where !excluded.contains(log.topic) {
            // A memory clean fails only on a batch that does not decode, which append never stores.
            guard let report = try? log.clean(nowMs: nowMs, dedupeBufferBytes: dedupeBufferBytes) else { continue }
            reports.append(report)
            cleanerStatsBox.record(report, topic: log.topic, partition: log.partition)
        }
        cleanerStatsBox.value.withLock { $0.lastRunMs = clock() }
        return reports
    }
}
