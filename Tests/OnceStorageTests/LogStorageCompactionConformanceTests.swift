import KafkaProtocol
import NIOCore
import OnceCore
import Synchronization
import Testing

@testable import OnceStorage

/// Compaction as every engine must do it: the same passes over the same appends leave the same
/// log, so the memory engine the simulator runs cleans exactly as the file engine the broker runs.
@Suite("LogStorage compaction conformance")
struct LogStorageCompactionConformanceTests {
    static let configs = [
        "cleanup.policy": "compact", "segment.bytes": "200", "min.cleanable.dirty.ratio": "0.01",
        "delete.retention.ms": "1000",
    ]
    static let now = TestBatches.baseTime

    static func keyed(_ pairs: [(String, String?)], producer: Int64 = -1, transactional: Bool = false) -> ByteBuffer {
        let records = pairs.enumerated().map { i, pair in
            Record(timestampDelta: Int64(i), offsetDelta: Int32(i), key: Array(pair.0.utf8), value: pair.1.map { Array($0.utf8) })
        }
        return RecordBatch.encode(
            records: records, baseTimestamp: TestBatches.baseTime, producerId: producer, producerEpoch: producer >= 0 ? 0 : -1,
            baseSequence: producer >= 0 && !transactional ? 0 : -1, isTransactional: transactional)
    }

    static func marker(commit: Bool, producer: Int64) -> ByteBuffer {
        RecordBatch.encodeMarker(
            ControlRecord(type: commit ? .commit : .abort, coordinatorEpoch: 0), producerId: producer, producerEpoch: 0,
            timestamp: TestBatches.baseTime)
    }

    static func pass(_ storage: any LogStorage, at nowMs: Int64) throws -> [CleaningReport] {
        try #require(storage as? any LogCleaning).runCleanerPass(nowMs: nowMs, dedupeBufferBytes: 1 << 20)
    }

    /// (offset, key, value) a read_committed reader sees: aborted transactions' records skipped.
    static func committed(_ log: PartitionLog) throws -> [String] {
        var open: [Int64: [(Int64, String, String?)]] = [:]
        var rows: [(Int64, String, String?)] = []
        var offset = log.logStartOffset
        while offset < log.logEndOffset {
            let batches = try RecordBatch.decodeAll(from: try log.read(from: offset, maxBytes: 1 << 24, limitOffset: .max))
            guard let last = batches.last else { break }
            for batch in batches {
                if batch.header.isControl {
                    let type = try ControlRecord.type(of: batch.records[0])
                    if type == .commit { rows += open.removeValue(forKey: batch.header.producerId) ?? [] }
                    if type == .abort { open[batch.header.producerId] = nil }
                    continue
                }
                let decoded = batch.records.map { r in
                    (batch.offset(of: r), String(decoding: r.key ?? [], as: UTF8.self), r.value.map { String(decoding: $0, as: UTF8.self) })
                }
                if batch.header.isTransactional { open[batch.header.producerId, default: []] += decoded } else { rows += decoded }
            }
            offset = last.header.lastOffset + 1
        }
        return rows.sorted { $0.0 < $1.0 }.map { "\($0.0):\($0.1)=\($0.2 ?? "∅")" }
    }

    static func allBatches(_ log: PartitionLog) throws -> [RecordBatch] {
        var all: [RecordBatch] = []
        var offset = log.logStartOffset
        while offset < log.logEndOffset {
            let batches = try RecordBatch.decodeAll(from: try log.read(from: offset, maxBytes: 1 << 24, limitOffset: .max))
            guard let last = batches.last else { break }
            all += batches
            offset = last.header.lastOffset + 1
        }
        return all
    }

    static func latestPerKey(_ rows: [String]) -> [String: String] {
        var latest: [String: String] = [:]
        for row in rows {
            let entry = row.split(separator: ":", maxSplits: 1)[1]
            let parts = entry.split(separator: "=", maxSplits: 1)
            latest[String(parts[0])] = String(parts[1])
        }
        return latest
    }

    @Test(arguments: Engine.compacting)
    func overwritesGoAndATombstoneGoesAfterTheHorizonItsFirstPassStamped(engine: Engine) throws {
        try engine.with { storage in
            try storage.createTopic(name: "c", partitions: 1, configs: Self.configs)
            let log = try #require(storage.partition(topic: "c", partition: 0))
            for round in 0..<3 {
                for key in ["a", "b", "c"] { _ = try log.append(Self.keyed([(key, "\(key)\(round)")])) }
            }
            _ = try log.append(Self.keyed([("b", nil)]))
            _ = try log.append(Self.keyed([("d", "d0"), ("a", "a3")]))
            _ = try log.append(Self.keyed([("e", "e0"), ("pad", String(repeating: "x", count: 200))]))
            let reports = try Self.pass(storage, at: Self.now)
            #expect(reports.contains { $0.cleaned })
            #expect(try Self.committed(log) == ["8:c=c2", "9:b=∅", "10:d=d0", "11:a=a3", "12:e=e0", "13:pad=\(String(repeating: "x", count: 200))"])
            let stamped = try #require(try RecordBatch.decodeAll(from: try log.read(from: 9, maxBytes: 1 << 20, limitOffset: .max)).first)
            #expect(stamped.header.hasDeleteHorizon && stamped.header.baseTimestamp == Self.now + 1000)
            #expect(stamped.timestamp(of: stamped.records[0]) == TestBatches.baseTime)
            // Before the horizon nothing is due; at it the tombstone goes with nothing new written.
            #expect(try !Self.pass(storage, at: Self.now + 999).contains { $0.cleaned })
            #expect(try Self.pass(storage, at: Self.now + 1000).contains { $0.cleaned })
            #expect(try Self.committed(log).prefix(4) == ["8:c=c2", "10:d=d0", "11:a=a3", "12:e=e0"])
            #expect(try !Self.pass(storage, at: Self.now + 5000).contains { $0.cleaned })
        }
    }

    @Test(arguments: Engine.compacting)
    func readCommittedSeesTheSameLatestValuesBeforeAndAfterCleaningTransactions(engine: Engine) throws {
        try engine.with { storage in
            try storage.createTopic(name: "t", partitions: 1, configs: Self.configs)
            let log = try #require(storage.partition(topic: "t", partition: 0))
            _ = try log.append(Self.keyed([("k1", "plain1"), ("k2", "plain2"), ("k3", "plain3")]))
            _ = try log.append(Self.keyed([("k1", "committed1"), ("k4", "committed4")], producer: 5, transactional: true))
            _ = try log.append(Self.marker(commit: true, producer: 5))
            _ = try log.append(Self.keyed([("k2", "aborted2"), ("k5", "aborted5")], producer: 7, transactional: true))
            _ = try log.append(Self.marker(commit: false, producer: 7))
            // Producer 5's committed transaction here supersedes k1 and k4 of its first one, whose
            // marker can then go; producer 7's abort marker goes too, with nothing left to abort.
            _ = try log.append(Self.keyed([("k6", "committed6")], producer: 7, transactional: true))
            _ = try log.append(Self.marker(commit: true, producer: 7))
            _ = try log.append(Self.keyed([("k1", "again1"), ("k4", "again4")], producer: 5, transactional: true))
            _ = try log.append(Self.marker(commit: true, producer: 5))
            _ = try log.append(Self.keyed([("k3", "open3")], producer: 6, transactional: true))
            _ = try log.append(Self.keyed([("k1", "after-open"), ("pad", String(repeating: "x", count: 200))]))
            _ = try log.append(Self.keyed([("z", "z")]))
            let before = Self.latestPerKey(try Self.committed(log))
            var passes = 0
            var nowMs = Self.now
            var abortMarkersRemoved = 0
            let removals = Mutex<[CleaningPlan.AbortMarker]>([])
            log.setAbortMarkerRemovalHandler { markers in removals.withLock { $0 += markers } }
            // Pass after pass, past every horizon: nothing a read_committed reader sees changes.
            while case let reports = try Self.pass(storage, at: nowMs), reports.contains(where: \.cleaned) {
                abortMarkersRemoved += reports.map(\.abortMarkersRemoved).reduce(0, +)
                #expect(Self.latestPerKey(try Self.committed(log)) == before)
                passes += 1
                nowMs += 2000
                try #require(passes < 10)
            }
            #expect(passes >= 2, "one pass stamps the horizons, a later one removes")
            let values = try Self.allBatches(log).flatMap { batch in
                batch.header.isControl ? [] : batch.records.compactMap { $0.value.map { String(decoding: $0, as: UTF8.self) } }
            }
            #expect(!values.contains("aborted2") && !values.contains("aborted5") && !values.contains("plain1"))
            #expect(values.contains("plain3"), "an open transaction's overwrite hides nothing yet")
            #expect(!values.contains("committed1") && !values.contains("committed4"))
            #expect(values.contains("open3"))
            let markers = try Self.allBatches(log).filter(\.header.isControl).map { try ControlRecord.type(of: $0.records[0]) }
            #expect(markers == [.commit, .commit], "the emptied commit's marker went, and the abort's")
            #expect(abortMarkersRemoved == 1)
            #expect(removals.withLock { $0 } == [.init(producerId: 7, offset: 8)], "the engine named the abort marker it removed")
        }
    }
}
