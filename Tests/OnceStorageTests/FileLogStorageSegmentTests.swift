import Foundation
import KafkaProtocol
import NIOCore
import Testing

@testable import OnceStorage

/// Segment rolling and retention as seen on disk.
@Suite("FileLogStorage segments")
struct FileLogStorageSegmentTests {
    let dir: TemporaryDirectory

    init() throws {
        dir = try TemporaryDirectory()
    }

    func logFiles(_ topic: String = "t", _ partition: Int32 = 0) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: dir.path + "/\(topic)-\(partition)")
            .filter { $0.hasSuffix(".log") }.sorted()
    }

    func name(_ base: Int64) -> String {
        String((FileSegment.path("", base, .log)).dropFirst())
    }

    @Test func rollsBySize() throws {
        defer { dir.remove() }
        let storage = try FileLogStorage(directory: dir.path, logger: quietLogger)
        let batchSize = TestBatches.batch().readableBytes
        try storage.createTopic(name: "t", partitions: 1, configs: ["segment.bytes": "\(batchSize * 3)"])
        let log = try #require(storage.partition(topic: "t", partition: 0) as? FilePartitionLog)
        try log.appendBatches(10)
        #expect(log.segmentBaseOffsets == [0, 3, 6, 9])
        #expect(try logFiles() == [name(0), name(3), name(6), name(9)])
        // A batch larger than a whole segment still goes in, alone.
        _ = try log.append(TestBatches.batch(valueSize: batchSize * 4))
        _ = try log.append(TestBatches.batch())
        #expect(log.segmentBaseOffsets == [0, 3, 6, 9, 10, 11])
        #expect(name(3) == "00000000000000000003.log")
        try storage.close()
        for base in [Int64(0), 3, 6] {
            #expect(FileManager.default.fileExists(atPath: FileSegment.path(dir.path + "/t-0", base, .index)))
            #expect(FileManager.default.fileExists(atPath: FileSegment.path(dir.path + "/t-0", base, .timeIndex)))
        }
        let reopened = try FileLogStorage(directory: dir.path, logger: quietLogger)
        let again = try #require(reopened.partition(topic: "t", partition: 0) as? FilePartitionLog)
        #expect(again.segmentBaseOffsets == [0, 3, 6, 9, 10, 11])
        #expect(try TestBatches.offsets(try again.read(from: 0, maxBytes: 1 << 20, limitOffset: .max)) == [0...0, 1...1, 2...2])
        #expect(try TestBatches.offsets(try again.read(from: 5, maxBytes: 1 << 20, limitOffset: .max)) == [5...5])
        #expect(try TestBatches.offsets(try again.read(from: 10, maxBytes: 1, limitOffset: .max)) == [10...10])
        try reopened.close()
    }

    @Test func rollsByAgeOnAppend() async throws {
        defer { dir.remove() }
        let storage = try FileLogStorage(directory: dir.path, logger: quietLogger)
        try storage.createTopic(name: "t", partitions: 1, configs: ["segment.ms": "20"])
        let log = try #require(storage.partition(topic: "t", partition: 0) as? FilePartitionLog)
        try log.appendBatches(2)
        #expect(log.segmentBaseOffsets == [0])
        try await Task.sleep(for: .milliseconds(60))
        try log.appendBatches(1)
        #expect(log.segmentBaseOffsets == [0, 2])
        try storage.close()
    }

    @Test func retentionRollsAnAgedActiveSegment() throws {
        defer { dir.remove() }
        let storage = try FileLogStorage(directory: dir.path, logger: quietLogger)
        try storage.createTopic(name: "t", partitions: 1, configs: ["segment.ms": "1000", "retention.ms": "-1"])
        let log = try #require(storage.partition(topic: "t", partition: 0) as? FilePartitionLog)
        try log.appendBatches(3)
        let now = currentTimeMillis()
        storage.enforceRetention(nowMs: now)
        #expect(log.segmentBaseOffsets == [0])
        storage.enforceRetention(nowMs: now + 60_000)
        #expect(log.segmentBaseOffsets == [0, 3])
        // An empty active segment has no age to roll on.
        storage.enforceRetention(nowMs: now + 120_000)
        #expect(log.segmentBaseOffsets == [0, 3])
        #expect(try log.append(TestBatches.batch()).baseOffset == 3)
        #expect(log.logStartOffset == 0)
        try storage.close()
    }

    @Test func retentionDeletesSegmentFiles() throws {
        defer { dir.remove() }
        let storage = try FileLogStorage(directory: dir.path, logger: quietLogger)
        let batchSize = TestBatches.batch().readableBytes
        try storage.createTopic(
            name: "t", partitions: 1, configs: ["segment.bytes": "\(batchSize * 2)", "retention.bytes": "\(batchSize * 2)"])
        let log = try #require(storage.partition(topic: "t", partition: 0) as? FilePartitionLog)
        try log.appendBatches(7)  // [0 1] [2 3] [4 5] [6]
        // A reader that picked the oldest segment before retention still gets its bytes.
        let early = try log.read(from: 0, maxBytes: 1 << 20, limitOffset: .max)
        storage.enforceRetention(nowMs: TestBatches.baseTime)
        #expect(log.segmentBaseOffsets == [4, 6])
        #expect(log.logStartOffset == 4)
        #expect(try logFiles() == [name(4), name(6)])
        #expect(try TestBatches.offsets(early) == [0...0, 1...1])
        try storage.close()

        let reopened = try FileLogStorage(directory: dir.path, logger: quietLogger)
        let again = try #require(reopened.partition(topic: "t", partition: 0))
        #expect(again.logStartOffset == 4 && again.logEndOffset == 7)
        #expect(throws: StorageError.offsetOutOfRange(requested: 3, logStart: 4, logEnd: 7)) {
            try again.read(from: 3, maxBytes: 100, limitOffset: .max)
        }
        try reopened.close()
    }
}
