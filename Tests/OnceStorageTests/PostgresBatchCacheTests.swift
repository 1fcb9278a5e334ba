import Foundation
import KafkaProtocol
import NIOCore
import Testing

@testable import OncePostgres
@testable import OnceStorage

/// The postgres engine's bounded memory: a partition keeps only its newest committed batches, reads
/// the rest from the table, and a broker gaining a partition reads none of its batches.
@Suite("PostgresBatchCache")
struct PostgresBatchCacheTests {
    /// Batches appended in appends of `perAppend`, each batch one record at `baseTime + its offset`.
    private func fill(_ log: any PartitionLog, batches: Int, perAppend: Int) async throws {
        var offset = 0
        while offset < batches {
            let n = min(perAppend, batches - offset)
            let parts = (0..<n).map { i in
                TestBatches.batch(timestamp: TestBatches.baseTime + Int64(offset + i))
            }
            let result = try log.append(TestBatches.concat(parts))
            try await log.waitDurable(upTo: result.logEndOffset)
            offset += n
        }
    }

    @Test func gainingAPartitionReadsNoBatchAndReadsAfterwardAskForOneQueryEach() async throws {
        let (first, drop) = try Engine.makePostgresStorage()
        defer { drop() }
        let batchSize = TestBatches.batch().readableBytes
        try first.createTopic(name: "t", partitions: 1, configs: ["segment.bytes": "\(batchSize * 100)", "retention.ms": "-1"])
        let log = try #require(first.partition(topic: "t", partition: 0))
        let count = 3000
        try await fill(log, batches: count, perAppend: 250)
        let size = log.sizeInBytes
        #expect(log.maxTimestamp()! == (offset: Int64(count - 1), timestamp: TestBatches.baseTime + Int64(count - 1)))
        try first.close()

        let second = try PostgresLogStorage(
            url: Engine.postgresURL!, nodeId: 1, schema: first.schema, cacheBytes: batchSize * 10, logger: quietLogger)
        defer { try? second.close() }
        let gained = try #require(second.partition(topic: "t", partition: 0))
        #expect(second.cacheCounts.batchesRead == 0 && second.cacheCounts.misses == 0 && second.cacheCounts.bytes == 0)
        #expect(gained.logStartOffset == 0 && gained.logEndOffset == Int64(count) && gained.highWatermark == Int64(count))
        #expect(gained.sizeInBytes == size)
        // The summaries answer ListOffsets -3 without a query.
        #expect(gained.maxTimestamp()! == (offset: Int64(count - 1), timestamp: TestBatches.baseTime + Int64(count - 1)))
        #expect(second.cacheCounts.misses == 0)

        // A timestamp lookup is one query in the one segment that can hold it.
        let found = try #require(try gained.offset(forTimestamp: TestBatches.baseTime + 1234))
        #expect(found == (offset: 1234, timestamp: TestBatches.baseTime + 1234))
        #expect(second.cacheCounts.misses == 1 && second.cacheCounts.batchesRead == 1)

        // One batch asked for, one batch read.
        #expect(try TestBatches.offsets(try gained.read(from: 0, maxBytes: 1, limitOffset: .max)) == [0...0])
        #expect(second.cacheCounts.batchesRead == 2)

        // Reading the whole partition: every batch once, in order, each read one query of at
        // most the bytes asked.
        var offset: Int64 = 0
        var seen: [Int64] = []
        var reads = 0
        while offset < gained.logEndOffset {
            let chunk = try gained.read(from: offset, maxBytes: batchSize * 64, limitOffset: .max)
            #expect(chunk.readableBytes <= batchSize * 64)
            let batches = try TestBatches.decode(chunk)
            seen += batches.map(\.header.baseOffset)
            offset = try #require(batches.last).header.lastOffset + 1
            reads += 1
        }
        #expect(seen == (0..<Int64(count)).map { $0 })
        #expect(second.cacheCounts.misses == 2 + reads)
        #expect(second.cacheCounts.batchesRead == 2 + count)
        #expect(second.cacheCounts.bytes == 0)
    }

    @Test func theTailStaysInMemoryWithinTheCacheAndAReadAcrossTheBoundaryIsWhole() async throws {
        let batchSize = TestBatches.batch().readableBytes
        let (storage, drop) = try Engine.makePostgresStorage(cacheBytes: batchSize * 10)
        defer { drop() }
        try storage.createTopic(name: "t", partitions: 1, configs: ["retention.ms": "-1"])
        let log = try #require(storage.partition(topic: "t", partition: 0))
        try await fill(log, batches: 100, perAppend: 5)
        #expect(storage.cacheCounts.bytes == batchSize * 10)

        // The newest ten batches come from memory.
        #expect(try TestBatches.offsets(try log.read(from: 90, maxBytes: 1 << 20, limitOffset: .max)).count == 10)
        #expect(storage.cacheCounts.misses == 0)

        // From 80: ten from the table, then the ten memory holds.
        let across = try TestBatches.offsets(try log.read(from: 80, maxBytes: 1 << 20, limitOffset: .max))
        #expect(across == (80..<100).map { Int64($0)...Int64($0) })
        #expect(storage.cacheCounts.misses == 1 && storage.cacheCounts.batchesRead == 20)

        // The limit holds across the boundary too.
        let limited = try TestBatches.offsets(try log.read(from: 85, maxBytes: 1 << 20, limitOffset: 93))
        #expect(limited == (85..<93).map { Int64($0)...Int64($0) })

        // Retention and DeleteRecords move the start in memory and in the table alike.
        try log.advanceLogStart(to: 95)
        #expect(storage.cacheCounts.bytes == batchSize * 5)
        #expect(throws: StorageError.offsetOutOfRange(requested: 94, logStart: 95, logEnd: 100)) {
            try log.read(from: 94, maxBytes: 1 << 20, limitOffset: .max)
        }
    }
}
