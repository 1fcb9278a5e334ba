import Metrics
import Synchronization

/// What the partitions' batch caches hold and how often a read had to go to the table: the two
/// numbers that say whether `--postgres-cache-bytes` fits the consumers' lag.
final class PostgresCacheStats: Sendable {
    private let bytes = Atomic<Int>(0)
    private let misses = Atomic<Int>(0)
    private let batches = Atomic<Int>(0)
    private let bytesGauge = Gauge(label: "once_postgres_cache_bytes")
    private let missCounter = Counter(label: "once_postgres_cache_misses_total")
    private let batchCounter = Counter(label: "once_postgres_batches_read_total")

    /// A partition's cache grew (or shrank, negative) by `delta` bytes.
    func cached(_ delta: Int) {
        guard delta != 0 else { return }
        let total = bytes.wrappingAdd(delta, ordering: .relaxed).newValue
        bytesGauge.record(total)
    }

    /// A read went to the table and brought back `count` batches.
    func missed(batches count: Int) {
        misses.wrappingAdd(1, ordering: .relaxed)
        batches.wrappingAdd(count, ordering: .relaxed)
        missCounter.increment()
        batchCounter.increment(by: count)
    }

    var cachedBytes: Int { bytes.load(ordering: .relaxed) }
    var missCount: Int { misses.load(ordering: .relaxed) }
    var batchesRead: Int { batches.load(ordering: .relaxed) }
}
