import OnceCore
import OnceStorage

/// The gauges that describe the broker's state rather than its traffic, computed when `/metrics` is
/// scraped, so producing and fetching never maintain them.
///
/// Cardinality is bounded by what this process has touched, not by what the data directory holds:
/// per-partition series cover the partitions created or opened since start (a produce, fetch or
/// offset lookup opens one), LSO lag and producer entries only those with producer state loaded,
/// and group lag only committed offsets on opened partitions. Thousands of partitions left idle
/// since a restart add no series.
struct BrokerStateMetrics: Sendable {
    let broker: Broker
    let connections: ConnectionLimiter

    func render() -> [UInt8] {
        var text = PrometheusText()
        text.family("once_connections", "gauge", help: "Client connections open now.")
        text.sample("once_connections", Int64(connections.openConnections))
        writeTransactions(into: &text)
        let highWatermarks = writePartitions(into: &text)
        writeGroups(into: &text, highWatermarks: highWatermarks)
        if let cleaning = broker.storage as? any LogCleaning { writeCleaner(cleaning.cleanerStats, into: &text) }
        ProcessMetrics.write(into: &text)
        return text.bytes
    }

    private func writeTransactions(into text: inout PrometheusText) {
        let now = broker.clock()
        let open = broker.transactions.transactions.filter { metadata in
            switch metadata.state {
            case .ongoing, .prepareCommit, .prepareAbort: true
            case .empty, .completeCommit, .completeAbort, .dead: false
            }
        }
        text.family("once_transactions_open", "gauge", help: "Transactions begun and not yet completed (Ongoing, PrepareCommit, PrepareAbort).")
        text.sample("once_transactions_open", Int64(open.count))
        let oldest = open.map(\.startTimestamp).filter { $0 >= 0 }.min()
        text.family(
            "once_transaction_oldest_age_seconds", "gauge",
            help: "Age of the oldest open transaction, 0 when none is open; a hanging one holds every LSO it touches.")
        text.sample("once_transaction_oldest_age_seconds", oldest.map { Double(max(0, now - $0)) / 1000 } ?? 0)
    }

    /// Writes the per-partition families and returns the high watermarks it saw, for group lag.
    private func writePartitions(into text: inout PrometheusText) -> [TopicPartitionKey: Int64] {
        let logs = broker.storage.loadedPartitions().sorted {
            ($0.topic, $0.partition) < ($1.topic, $1.partition)
        }
        var highWatermarks: [TopicPartitionKey: Int64] = [:]
        text.family("once_partition_log_size_bytes", "gauge", help: "Bytes the partition's batches take in storage.")
        for log in logs {
            let key = TopicPartitionKey(log.topic, log.partition)
            highWatermarks[key] = log.highWatermark
            text.sample("once_partition_log_size_bytes", labels(key), log.sizeInBytes)
        }
        text.family("once_partition_high_watermark", "gauge", help: "The partition's high watermark.")
        for log in logs {
            text.sample("once_partition_high_watermark", labels(TopicPartitionKey(log.topic, log.partition)), log.highWatermark)
        }
        let loaded = broker.producers.loaded()
        let gauges = loaded.map { ($0.key, $0.producers.gauges) }
        text.family(
            "once_partition_lso_lag", "gauge",
            help: "High watermark minus last stable offset: records read_committed consumers cannot see yet.")
        for (key, gauge) in gauges {
            let end = highWatermarks[key] ?? gauge.lastStableOffset
            text.sample("once_partition_lso_lag", labels(key), max(0, end - gauge.lastStableOffset))
        }
        text.family("once_partition_producers", "gauge", help: "Producer-state entries (producer ids) the partition tracks.")
        for (key, gauge) in gauges {
            text.sample("once_partition_producers", labels(key), Int64(gauge.producers))
        }
        return highWatermarks
    }

    private func writeCleaner(_ stats: CleanerStats, into text: inout PrometheusText) {
        text.family("once_log_cleaner_bytes_read_total", "counter", help: "Segment bytes the log cleaner has read (Kafka counts them as cleaned).")
        text.sample("once_log_cleaner_bytes_read_total", stats.bytesRead)
        text.family("once_log_cleaner_bytes_written_total", "counter", help: "Bytes of cleaned segments the log cleaner has written.")
        text.sample("once_log_cleaner_bytes_written_total", stats.bytesWritten)
        text.family("once_log_cleaner_segments_replaced_total", "counter", help: "Segments the log cleaner has swapped for cleaned ones.")
        text.sample("once_log_cleaner_segments_replaced_total", stats.segmentsReplaced)
        text.family(
            "once_log_cleaner_abort_markers_removed_total", "counter",
            help: "Abort markers the log cleaner removed once no record of their transaction remained and delete.retention.ms had passed.")
        text.sample("once_log_cleaner_abort_markers_removed_total", stats.abortMarkersRemoved)
        text.family("once_log_cleaner_cleans_total", "counter", help: "Passes over a partition that swapped cleaned segments in.")
        text.sample("once_log_cleaner_cleans_total", stats.cleans)
        text.family(
            "once_log_cleaner_offset_map_bytes_max", "gauge",
            help: "The largest offset map a log cleaner pass has used, at most --log-cleaner-dedupe-buffer-size.")
        text.sample("once_log_cleaner_offset_map_bytes_max", stats.largestOffsetMapBytes)
        text.family(
            "once_log_cleaner_pass_state_bytes_max", "gauge",
            help: "The most state a log cleaner pass has held: its offset map plus per-transaction and per-producer state.")
        text.sample("once_log_cleaner_pass_state_bytes_max", stats.largestPassStateBytes)
        text.family(
            "once_log_cleaner_last_run_timestamp_seconds", "gauge",
            help: "When the log cleaner's last pass ended, seconds since the epoch; 0 before the first.")
        text.sample("once_log_cleaner_last_run_timestamp_seconds", Double(stats.lastRunMs ?? 0) / 1000)
        text.family(
            "once_partition_dirty_ratio", "gauge",
            help: "Share of a compacted partition's cleanable bytes not yet cleaned, as the cleaner's last pass saw it.")
        for (key, ratio) in stats.dirtyRatios.sorted(by: { $0.key < $1.key }) {
            text.sample("once_partition_dirty_ratio", labels(TopicPartitionKey(key.topic, key.partition)), ratio)
        }
    }

    private func writeGroups(into text: inout PrometheusText, highWatermarks: [TopicPartitionKey: Int64]) {
        let groups = broker.groups.groups()
        text.family("once_consumer_groups", "gauge", help: "Consumer groups by state.")
        // A KIP-848 group counts once, in its own state (its offsets sit in a classic entry).
        let modern = broker.groups.modernGroups()
        let modernIds = Set(modern.map(\.groupId))
        var byState: [String: Int64] = [:]
        for group in groups where !modernIds.contains(group.groupId) { byState[group.state.rawValue, default: 0] += 1 }
        for group in modern { byState[group.state.rawValue, default: 0] += 1 }
        let states = ConsumerGroup.State.allCases.map(\.rawValue)
            + [ModernGroup.State.assigning, .reconciling].map(\.rawValue)
        for state in states {
            text.sample("once_consumer_groups", [("state", state)], byState[state] ?? 0)
        }
        text.family(
            "once_consumer_group_lag", "gauge",
            help: "High watermark minus the group's committed offset, per committed partition.")
        for group in groups {
            for (partition, committed) in group.offsets.sorted(by: { $0.key < $1.key }) {
                guard let end = highWatermarks[TopicPartitionKey(partition.topic, partition.partition)] else { continue }
                text.sample(
                    "once_consumer_group_lag",
                    [("group", group.groupId), ("topic", partition.topic), ("partition", String(partition.partition))],
                    max(0, end - committed.offset))
            }
        }
    }

    private func labels(_ key: TopicPartitionKey) -> [(String, String)] {
        [("topic", key.topic), ("partition", String(key.partition))]
    }
}
