import OnceCore
import OnceStorage

/// The log cleaner run between steps over the compacted output, on the memory engine's copy of
/// the file engine's rules: whatever the producers, zombies, crashes and power cuts left in the
/// log, a read_committed reader must see the same latest value of every key after a pass as
/// before it, and nothing it could not see before (an aborted or undecided record surfacing).
extension BrokerSimulation {
    static let compactedConfig = [
        "cleanup.policy": "compact", "segment.bytes": "700", "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "4000",
    ]
    /// Few keys per partition, so records supersede each other often.
    static let keyCount: UInt32 = 6

    /// The record key of a value on the compacted output (FNV-1a, so a seed replays exactly);
    /// nil when the output is not compacted.
    func recordKey(of value: String) -> [UInt8]? {
        guard options.cleanerChance > 0 else { return nil }
        var hash: UInt32 = 2_166_136_261
        for byte in value.utf8 { hash = (hash ^ UInt32(byte)) &* 16_777_619 }
        return Array("k\(hash % Self.keyCount)".utf8)
    }

    func cleanerStep() async throws {
        // Requests still in flight would otherwise land between the two reads (a COMMIT marker
        // surfacing records) and pass for the cleaner's doing.
        world.quiesce()
        var before: [Int32: [(offset: Int64, value: String)]] = [:]
        for partition in 0..<options.partitions { before[partition] = try await fetchAll(partition, isolation: 1) }
        let reports = world.storage.runCleanerPass(nowMs: world.clock.now, dedupeBufferBytes: options.cleanerMapBytes)
        let cleaned = reports.filter(\.cleaned).count
        cleanerPasses += cleaned
        abortMarkersRemoved += reports.map(\.abortMarkersRemoved).reduce(0, +)
        trace("cleaner pass: \(cleaned) of \(reports.count) partitions cleaned")
        for partition in 0..<options.partitions {
            let after = try await fetchAll(partition, isolation: 1)
            let old = before[partition]!
            removedByCleaner += old.count - after.count
            if latestPerKey(after) != latestPerKey(old) {
                history.note("partition \(partition): the cleaner changed read_committed's latest values from \(latestPerKey(old)) to \(latestPerKey(after))")
            }
            let seen = Set(old.map { "\($0.offset):\($0.value)" })
            if let surfaced = after.first(where: { !seen.contains("\($0.offset):\($0.value)") }) {
                history.note("partition \(partition): \(surfaced.value) at \(surfaced.offset) became visible to read_committed by cleaning")
            }
        }
    }

    /// A kill -9 leaves the log as it was, so read_committed must see exactly what it saw before:
    /// a producer-state snapshot written before a pass removed abort markers names transactions
    /// the log no longer ends, and the restarted broker must not hide the records after them.
    func keepingReadCommittedView(_ restart: () throws -> Void) async throws {
        guard options.cleanerChance > 0 else { return try restart() }
        world.quiesce()
        var before: [Int32: [(offset: Int64, value: String)]] = [:]
        for partition in 0..<options.partitions { before[partition] = try await fetchAll(partition, isolation: 1) }
        try restart()
        for partition in 0..<options.partitions {
            let after = try await fetchAll(partition, isolation: 1).map { "\($0.offset):\($0.value)" }
            let old = before[partition]!.map { "\($0.offset):\($0.value)" }
            if after != old {
                let lost = Set(old).subtracting(after).sorted().prefix(3)
                let gained = Set(after).subtracting(old).sorted().prefix(3)
                history.note("partition \(partition): a restart changed what read_committed sees (lost \(lost), gained \(gained))")
            }
        }
    }

    private func latestPerKey(_ records: [(offset: Int64, value: String)]) -> [String: String] {
        var latest: [String: String] = [:]
        for record in records { latest[String(decoding: recordKey(of: record.value) ?? [], as: UTF8.self)] = record.value }
        return latest
    }
}
