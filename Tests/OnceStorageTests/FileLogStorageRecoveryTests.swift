import Foundation
import KafkaProtocol
import NIOCore
import Testing

@testable import OnceStorage

/// Reopening, crash recovery and index rebuilding of the file engine.
@Suite("FileLogStorage recovery")
struct FileLogStorageRecoveryTests {
    let dir: TemporaryDirectory

    init() throws {
        dir = try TemporaryDirectory()
    }

    func open() throws -> FileLogStorage {
        try FileLogStorage(directory: dir.path, logger: quietLogger)
    }

    func segmentPath(_ topic: String, _ partition: Int32, _ base: Int64, _ kind: FileSegment.FileKind) -> String {
        FileSegment.path(dir.path + "/\(topic)-\(partition)", base, kind)
    }

    func fileSize(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? -1
    }

    func truncate(_ path: String, to size: Int) throws {
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.truncate(atOffset: UInt64(size))
        try handle.close()
    }

    func appendBytes(_ bytes: [UInt8], to path: String) throws {
        let handle = try #require(FileHandle(forWritingAtPath: path))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(bytes))
        try handle.close()
    }

    func flipByte(at offset: Int, in path: String) throws {
        var data = try Data(contentsOf: URL(fileURLWithPath: path))
        data[offset] ^= 0xFF
        try data.write(to: URL(fileURLWithPath: path))
    }

    @Test func reopenKeepsTopicsIdsConfigsAndData() throws {
        defer { dir.remove() }
        var storage = try open()
        let a = try storage.createTopic(name: "a", partitions: 2, configs: ["retention.ms": "-1", "cleanup.policy": "compact"])
        let b = try storage.createTopic(name: "b", partitions: 1, configs: [:])
        let log = try #require(storage.partition(topic: "a", partition: 1))
        try log.appendBatches(5, records: 2)
        let before = try log.read(from: 0, maxBytes: 1 << 20, limitOffset: .max)
        try storage.close()

        storage = try open()
        #expect(storage.topics() == [a, b])
        let reopened = try #require(storage.partition(topic: "a", partition: 1))
        #expect(reopened.logEndOffset == 10)
        #expect(try reopened.read(from: 0, maxBytes: 1 << 20, limitOffset: .max) == before)
        #expect(try #require(storage.partition(topic: "a", partition: 0)).logEndOffset == 0)
        #expect(try reopened.append(TestBatches.batch()).baseOffset == 10)
        try storage.close()

        storage = try open()
        #expect(try #require(storage.partition(topic: "a", partition: 1)).logEndOffset == 11)
        try storage.close()
    }

    @Test func dataSurvivesWithoutCloseLikeAfterKill() throws {
        defer { dir.remove() }
        let first = try open()
        try first.createTopic(name: "t", partitions: 1, configs: ["index.interval.bytes": "0"])
        let log = try #require(first.partition(topic: "t", partition: 0))
        try log.appendBatches(7)
        // A second instance sees what a restarted process would: no close, no index files.
        let second = try open()
        let recovered = try #require(second.partition(topic: "t", partition: 0))
        #expect(recovered.logEndOffset == 7)
        #expect(try TestBatches.offsets(try recovered.read(from: 4, maxBytes: 1, limitOffset: .max)) == [4...4])
        try second.close()
        try first.close()
    }

    @Test func tornTailIsCutAtTheLastWholeBatch() throws {
        defer { dir.remove() }
        var storage = try open()
        try storage.createTopic(name: "t", partitions: 1, configs: [:])
        let log = try #require(storage.partition(topic: "t", partition: 0))
        try log.appendBatches(3, records: 2)
        try storage.close()
        let path = segmentPath("t", 0, 0, .log)
        let full = try fileSize(path)
        let batchSize = full / 3
        try truncate(path, to: full - 7)

        storage = try open()
        let recovered = try #require(storage.partition(topic: "t", partition: 0))
        #expect(recovered.logEndOffset == 4)
        #expect(try fileSize(path) == batchSize * 2)
        #expect(try TestBatches.offsets(try recovered.read(from: 0, maxBytes: 1 << 20, limitOffset: .max)) == [0...1, 2...3])
        #expect(try recovered.append(TestBatches.batch()).baseOffset == 4)
        #expect(try TestBatches.offsets(try recovered.read(from: 3, maxBytes: 1 << 20, limitOffset: .max)) == [2...3, 4...4])
        try storage.close()
    }

    @Test(arguments: [[UInt8](repeating: 0, count: 5), [UInt8](repeating: 0xAB, count: 300), Array(0..<100)])
    func garbageAfterTheLastBatchIsCut(garbage: [UInt8]) throws {
        defer { dir.remove() }
        var storage = try open()
        try storage.createTopic(name: "t", partitions: 1, configs: [:])
        try #require(storage.partition(topic: "t", partition: 0)).appendBatches(3)
        try storage.close()
        let path = segmentPath("t", 0, 0, .log)
        let valid = try fileSize(path)
        try appendBytes(garbage, to: path)

        storage = try open()
        let recovered = try #require(storage.partition(topic: "t", partition: 0))
        #expect(recovered.logEndOffset == 3)
        #expect(try fileSize(path) == valid)
        #expect(try recovered.append(TestBatches.batch()).baseOffset == 3)
        #expect(try TestBatches.offsets(try recovered.read(from: 0, maxBytes: 1 << 20, limitOffset: .max)).count == 4)
        try storage.close()
    }

    @Test func corruptBatchIsCutWithEverythingAfterIt() throws {
        defer { dir.remove() }
        var storage = try open()
        try storage.createTopic(name: "t", partitions: 1, configs: [:])
        try #require(storage.partition(topic: "t", partition: 0)).appendBatches(4, valueSize: 50)
        try storage.close()
        let path = segmentPath("t", 0, 0, .log)
        let batchSize = try fileSize(path) / 4
        // A byte inside the records of the third batch: only the CRC can tell.
        try flipByte(at: batchSize * 2 + 70, in: path)

        storage = try open()
        let recovered = try #require(storage.partition(topic: "t", partition: 0))
        #expect(recovered.logEndOffset == 2)
        #expect(try fileSize(path) == batchSize * 2)
        #expect(try TestBatches.offsets(try recovered.read(from: 0, maxBytes: 1 << 20, limitOffset: .max)) == [0...0, 1...1])
        #expect(try recovered.append(TestBatches.batch()).baseOffset == 2)
        try storage.close()
    }

    @Test func corruptLastBatchOfTheActiveSegmentIsCut() throws {
        defer { dir.remove() }
        var storage = try open()
        let batchSize = TestBatches.batch(valueSize: 50).readableBytes
        try storage.createTopic(name: "t", partitions: 1, configs: ["segment.bytes": "\(batchSize * 2)"])
        try #require(storage.partition(topic: "t", partition: 0)).appendBatches(5, valueSize: 50)  // [0 1] [2 3] [4]
        try storage.close()
        let path = segmentPath("t", 0, 4, .log)
        try flipByte(at: batchSize - 3, in: path)

        storage = try open()
        let recovered = try #require(storage.partition(topic: "t", partition: 0))
        #expect(recovered.logEndOffset == 4)
        #expect(try fileSize(path) == 0)
        #expect(try recovered.read(from: 4, maxBytes: 1 << 20, limitOffset: .max).readableBytes == 0)
        #expect(try TestBatches.offsets(try recovered.read(from: 2, maxBytes: 1 << 20, limitOffset: .max)) == [2...2, 3...3])
        #expect(try recovered.append(TestBatches.batch()).baseOffset == 4)
        try storage.close()
    }

    @Test func missingOrDamagedIndexesAreRebuilt() throws {
        defer { dir.remove() }
        var storage = try open()
        let batchSize = TestBatches.batch(valueSize: 40).readableBytes
        try storage.createTopic(
            name: "t", partitions: 1,
            configs: ["segment.bytes": "\(batchSize * 10)", "index.interval.bytes": "\(batchSize)"])
        let log = try #require(storage.partition(topic: "t", partition: 0))
        for i in 0..<25 {
            _ = try log.append(TestBatches.batch(timestamp: TestBatches.baseTime + Int64(i * 100), valueSize: 40, tag: i))
        }
        try storage.close()
        let index0 = segmentPath("t", 0, 0, .index)
        let timeIndex0 = segmentPath("t", 0, 0, .timeIndex)
        let index10 = segmentPath("t", 0, 10, .index)
        let original0 = try Data(contentsOf: URL(fileURLWithPath: index0))
        let originalTime0 = try Data(contentsOf: URL(fileURLWithPath: timeIndex0))
        #expect(original0.count > 0 && originalTime0.count > 0)
        try FileManager.default.removeItem(atPath: index0)
        try FileManager.default.removeItem(atPath: timeIndex0)
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: index10))

        storage = try open()
        // Partitions recover on first use, so that is when the indexes are rebuilt.
        let reopened = try #require(storage.partition(topic: "t", partition: 0))
        #expect(try Data(contentsOf: URL(fileURLWithPath: index0)) == original0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: timeIndex0)) == originalTime0)
        #expect(try fileSize(index10) % OffsetIndex.entrySize == 0 && (try fileSize(index10)) > 0)
        for offset in Int64(0)..<25 {
            #expect(try TestBatches.offsets(try reopened.read(from: offset, maxBytes: 1, limitOffset: .max)) == [offset...offset])
            #expect(try reopened.offset(forTimestamp: TestBatches.baseTime + offset * 100 - 50)! == (offset, TestBatches.baseTime + offset * 100))
        }
        #expect(reopened.maxTimestamp()! == (24, TestBatches.baseTime + 2400))
        try storage.close()
    }

    @Test func orphanPartitionDirectoriesAndTempFilesAreRemoved() throws {
        defer { dir.remove() }
        var storage = try open()
        try storage.createTopic(name: "kept", partitions: 1, configs: [:])
        try storage.close()
        let orphan = dir.path + "/gone-0"
        let extraPartition = dir.path + "/kept-3"
        let unrelated = dir.path + "/notes"
        for path in [orphan, extraPartition, unrelated] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        try Data([0]).write(to: URL(fileURLWithPath: dir.path + "/__topics/half.meta.tmp"))

        storage = try open()
        #expect(!FileManager.default.fileExists(atPath: orphan))
        #expect(!FileManager.default.fileExists(atPath: extraPartition))
        #expect(FileManager.default.fileExists(atPath: unrelated))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/__topics/half.meta.tmp"))
        #expect(storage.topics().map(\.name) == ["kept"])
        try storage.close()
    }

    @Test func corruptTopicMetadataIsReportedNotIgnored() throws {
        defer { dir.remove() }
        let storage = try open()
        try storage.createTopic(name: "t", partitions: 1, configs: [:])
        try storage.close()
        try flipByte(at: 8, in: dir.path + "/__topics/t.meta")
        #expect(throws: StorageError.self) { try open() }
    }

    @Test func deleteTopicRemovesItsFiles() throws {
        defer { dir.remove() }
        var storage = try open()
        try storage.createTopic(name: "t", partitions: 2, configs: [:])
        try #require(storage.partition(topic: "t", partition: 0)).appendBatches(2)
        try storage.deleteTopic(name: "t")
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/t-0"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/t-1"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/__topics/t.meta"))
        try storage.close()
        storage = try open()
        #expect(storage.topics().isEmpty)
        try storage.close()
    }
}
