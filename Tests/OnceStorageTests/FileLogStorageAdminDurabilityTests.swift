import Foundation
import KafkaProtocol
import Testing

@testable import OnceStorage

/// Partition growth, config changes and log-start advances of the file engine survive a reopen,
/// including one without a close (as after kill -9).
@Suite("FileLogStorage admin durability")
struct FileLogStorageAdminDurabilityTests {
    let dir: TemporaryDirectory

    init() throws {
        dir = try TemporaryDirectory()
    }

    func open() throws -> FileLogStorage {
        try FileLogStorage(directory: dir.path, logger: quietLogger)
    }

    @Test func addedPartitionsAndNewConfigsSurviveAReopenWithoutClose() throws {
        defer { dir.remove() }
        let first = try open()
        try first.createTopic(name: "t", partitions: 1, configs: [:])
        try first.addPartitions(topic: "t", count: 4)
        try #require(first.partition(topic: "t", partition: 3)).appendBatches(2)
        try first.setTopicConfigs(topic: "t", configs: ["retention.ms": "5000", "flush.ms": "100"])

        let second = try open()
        defer { try? second.close() }
        let meta = try #require(second.topic(named: "t"))
        #expect(meta.partitionCount == 4)
        #expect(meta.configs == ["retention.ms": "5000", "flush.ms": "100"])
        #expect(second.partition(topic: "t", partition: 3)?.logEndOffset == 2)
        try? first.close()
    }

    @Test func logStartAdvanceSurvivesAReopenWithoutClose() throws {
        defer { dir.remove() }
        let first = try open()
        try first.createTopic(name: "t", partitions: 1, configs: [:])
        let log = try #require(first.partition(topic: "t", partition: 0))
        try log.appendBatches(5, records: 2)  // 0...9 in one segment
        #expect(try log.advanceLogStart(to: 7) == 7)

        let second = try open()
        defer { try? second.close() }
        let reopened = try #require(second.partition(topic: "t", partition: 0))
        #expect(reopened.logStartOffset == 7)
        #expect(reopened.logEndOffset == 10)
        #expect(throws: StorageError.offsetOutOfRange(requested: 6, logStart: 7, logEnd: 10)) {
            try reopened.read(from: 6, maxBytes: 1 << 20, limitOffset: .max)
        }
        try? first.close()
    }

    @Test func aPartitionDirectoryTheMetadataNeverNamedIsRemovedOnOpen() throws {
        defer { dir.remove() }
        let first = try open()
        try first.createTopic(name: "t", partitions: 1, configs: [:])
        try first.close()
        // What a crash between creating a new partition's directory and rewriting the metadata leaves.
        try FileManager.default.createDirectory(atPath: dir.path + "/t-1", withIntermediateDirectories: true)

        let second = try open()
        defer { try? second.close() }
        #expect(second.topic(named: "t")?.partitionCount == 1)
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/t-1"))
        #expect(try second.addPartitions(topic: "t", count: 2).partitionCount == 2)
    }
}
