import Foundation
import KafkaProtocol
import NIOCore
import OnceCore
import Testing

@testable import OncePostgres
@testable import OnceStorage

/// What only the postgres engine's cleaner promises: a broker whose lease another took cleans
/// nothing, however dirty the partition, and the new leader then cleans it.
@Suite("PostgresCompaction")
struct PostgresCompactionTests {
    static let configs = ["cleanup.policy": "compact", "segment.bytes": "200", "min.cleanable.dirty.ratio": "0.01"]

    static func keyed(_ key: String, _ value: String) -> ByteBuffer {
        RecordBatch.encode(
            records: [Record(timestampDelta: 0, offsetDelta: 0, key: Array(key.utf8), value: Array(value.utf8))],
            baseTimestamp: TestBatches.baseTime)
    }

    static func values(_ log: any PartitionLog) throws -> [String] {
        try TestBatches.decode(try log.read(from: log.logStartOffset, maxBytes: 1 << 24, limitOffset: .max))
            .flatMap(\.records).map { String(decoding: $0.value ?? [], as: UTF8.self) }
    }

    @Test func anExLeaderNeverCleansAndTheNewLeaderDoes() async throws {
        let (first, drop) = try Engine.makePostgresStorage()
        defer { drop() }
        try first.createTopic(name: "c", partitions: 1, configs: Self.configs)
        let log = try #require(first.partition(topic: "c", partition: 0))
        for round in 0..<4 {
            for key in ["a", "b"] { try await log.waitDurable(upTo: try log.append(Self.keyed(key, "\(key)\(round)")).logEndOffset) }
        }
        let all = ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3"]

        let second = try PostgresLogStorage(url: Engine.postgresURL!, nodeId: 2, schema: first.schema, cacheBytes: 1, logger: quietLogger)
        defer { try? second.close() }
        let epoch = try #require(first.leaderEpoch(topic: "c", partition: 0))
        #expect(try second.takeOver(topic: "c", partition: 0, sessionTimeoutMs: 10_000) == epoch + 1)

        // The first has not noticed (it appended nothing since), yet its pass finds the lease gone.
        let stale = first.runCleanerPass(nowMs: TestBatches.baseTime, dedupeBufferBytes: 1 << 20)
        #expect(!stale.contains { $0.cleaned })
        let taken = try #require(second.partition(topic: "c", partition: 0))
        #expect(try Self.values(taken) == all)

        let reports = second.runCleanerPass(nowMs: TestBatches.baseTime, dedupeBufferBytes: 1 << 20)
        #expect(reports.contains { $0.cleaned })
        let cleaned = try Self.values(taken)
        #expect(!cleaned.contains("a0") && !cleaned.contains("b0") && cleaned.suffix(2) == ["a3", "b3"])
    }
}
