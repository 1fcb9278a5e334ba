import Foundation
import KafkaProtocol
import NIOCore
import Testing

@testable import OnceStorage

/// The bounded cache of segment descriptors: partitions beyond its capacity still read and write,
/// fsync still reaches evicted files, and an eviction never closes a descriptor someone is using.
@Suite("File handle cache")
struct FileHandleCacheTests {
    let dir: TemporaryDirectory

    init() throws {
        dir = try TemporaryDirectory()
    }

    /// Descriptors this process holds on files under `path`, read from /proc/self/fd.
    static func descriptors(under path: String) -> Int {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
        return entries.filter { fd in
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + fd))?.hasPrefix(path) ?? false
        }.count
    }

    @Test func morePartitionsThanHandlesStayReadableAndWritable() throws {
        defer { dir.remove() }
        let capacity = 4
        let partitions: Int32 = 40
        let storage = try FileLogStorage(directory: dir.path, maxOpenFiles: capacity, logger: quietLogger)
        try storage.createTopic(name: "t", partitions: partitions, configs: [:])
        let logs = try (0..<partitions).map { try #require(storage.partition(topic: "t", partition: $0)) }
        // Round-robin appends: every append evicts the descriptor the next one needs.
        for round in 0..<3 {
            for (i, log) in logs.enumerated() {
                let result = try log.append(TestBatches.batch(tag: i * 10 + round))
                #expect(result.baseOffset == Int64(round))
            }
            #expect(Self.descriptors(under: dir.path) <= capacity)
        }
        for (i, log) in logs.enumerated() {
            let batches = try TestBatches.decode(log.read(from: 0, maxBytes: 1 << 20, limitOffset: 3))
            #expect(batches.map(\.header.baseOffset) == [0, 1, 2])
            let values = batches.map { String(decoding: $0.records[0].value ?? [], as: UTF8.self) }
            #expect(values.enumerated().allSatisfy { round, value in value.hasPrefix("tag\(i * 10 + round)-") })
            #expect(values.count == 3)
        }
        #expect(storage.openFileStats.open <= capacity)
        #expect(storage.openFileStats.opens > Int(partitions))
        #expect(Self.descriptors(under: dir.path) <= capacity)
        try storage.close()

        // Reopening (recovery of every partition) stays within the cache too, and finds everything.
        let reopened = try FileLogStorage(directory: dir.path, maxOpenFiles: capacity, logger: quietLogger)
        #expect(Self.descriptors(under: dir.path) <= capacity)
        for p in 0..<partitions {
            #expect(reopened.partition(topic: "t", partition: p)?.logEndOffset == 3)
        }
        try reopened.close()
        #expect(Self.descriptors(under: dir.path) == 0)
    }

    @Test func aRestartOpensOnlyThePartitionsThatAreUsed() throws {
        defer { dir.remove() }
        let storage = try FileLogStorage(directory: dir.path, logger: quietLogger)
        try storage.createTopic(name: "t", partitions: 20, configs: [:])
        for p in 0..<Int32(20) { try #require(storage.partition(topic: "t", partition: p)).appendBatches(2) }
        try storage.close()

        let reopened = try FileLogStorage(directory: dir.path, logger: quietLogger)
        #expect(reopened.topic(named: "t")?.partitionCount == 20)
        #expect(reopened.openFileStats.opens == 0)
        #expect(Self.descriptors(under: dir.path) == 0)
        let used = try #require(reopened.partition(topic: "t", partition: 7))
        #expect(used.logEndOffset == 2)
        #expect(reopened.openFileStats.open == 1)
        // Retention is the exception: it reaches every partition, used or not.
        reopened.enforceRetention(nowMs: TestBatches.baseTime)
        #expect(reopened.openFileStats.opens >= 20)
        try reopened.close()
    }

    @Test func aPartitionFoundJustBeforeItsTopicIsDeletedNeverOpens() throws {
        defer { dir.remove() }
        let runtime = FileStorageRuntime(flushPolicy: .none, maxOpenFiles: 4, logger: quietLogger, io: .shared)
        let path = dir.path + "/t-0"
        let slot = LazyPartition(topic: "t", partition: 0, directory: path, config: try TopicConfig(overrides: [:]), runtime: runtime)
        slot.markDeleted()
        #expect(throws: StorageError.unknownTopic("t")) { try slot.open() }
        #expect(!FileManager.default.fileExists(atPath: path))
    }

    @Test func flushAlwaysSyncsFilesEvictedBeforeTheirSync() async throws {
        defer { dir.remove() }
        let storage = try FileLogStorage(directory: dir.path, flushPolicy: .always, maxOpenFiles: 1, logger: quietLogger)
        try storage.createTopic(name: "t", partitions: 3, configs: [:])
        let logs = try (0..<Int32(3)).map { try #require(storage.partition(topic: "t", partition: $0) as? FilePartitionLog) }
        // Each append evicts the previous partition's descriptor before that partition syncs.
        let ends = try logs.map { try $0.append(TestBatches.batch()).logEndOffset }
        #expect(storage.openFileStats.open == 1)
        for (log, end) in zip(logs, ends) {
            #expect(log.durableOffset < end)
            try await log.waitDurable(upTo: end)
            #expect(log.durableOffset == end)
            #expect(log.syncRounds == 1)
        }
        try storage.close()
        let reopened = try FileLogStorage(directory: dir.path, maxOpenFiles: 1, logger: quietLogger)
        for p in 0..<Int32(3) {
            let log = try #require(reopened.partition(topic: "t", partition: p))
            #expect(try TestBatches.offsets(log.read(from: 0, maxBytes: 1 << 20, limitOffset: 1)) == [0...0])
        }
        try reopened.close()
    }

    @Test func evictionLeavesADescriptorInUseOpen() throws {
        defer { dir.remove() }
        let cache = FileHandleCache(capacity: 1)
        let first = try SegmentFile.create(path: dir.path + "/a", cache: cache)
        try first.open().write(ByteBuffer(string: "still readable"), at: 0)
        // A reader takes the descriptor (as a fetch does under the partition lock)...
        let held = try first.open()
        // ...then another file pushes it out of the cache and the file is even unlinked.
        _ = try SegmentFile.create(path: dir.path + "/b", cache: cache)
        #expect(cache.openCount == 1)
        try PosixFile.remove(dir.path + "/a")
        #expect(String(buffer: try held.read(at: 0, count: 14)) == "still readable")
        #expect(Self.descriptors(under: dir.path) == 2)
    }

    @Test func aFetchPinnedBeforeEvictionAndRetentionFinishes() throws {
        defer { dir.remove() }
        let storage = try FileLogStorage(directory: dir.path, maxOpenFiles: 1, logger: quietLogger)
        let batchSize = TestBatches.batch(valueSize: 100).readableBytes
        try storage.createTopic(name: "t", partitions: 2, configs: ["segment.bytes": "\(batchSize * 2)"])
        let log = try #require(storage.partition(topic: "t", partition: 0) as? FilePartitionLog)
        let other = try #require(storage.partition(topic: "t", partition: 1))
        try log.appendBatches(6, valueSize: 100)  // segments [0-1] [2-3] [4-5]
        // What a fetch does: pick the segment and pin its descriptor under the lock, read later.
        let segment = try #require(log.state.withLock { $0.segments.first })
        let pinned = try log.state.withLock { _ in try segment.log.open() }
        _ = try other.append(TestBatches.batch())  // evicts partition 0's descriptors
        #expect(try log.deleteSegments(below: 4) == 2)
        let bytes = try pinned.read(at: 0, count: segment.size)
        #expect(try TestBatches.offsets(bytes) == [0...0, 1...1])
        try storage.close()
    }

    @Test func deletingATopicReleasesItsDescriptors() throws {
        defer { dir.remove() }
        let storage = try FileLogStorage(directory: dir.path, logger: quietLogger)
        try storage.createTopic(name: "gone", partitions: 5, configs: [:])
        try storage.createTopic(name: "kept", partitions: 1, configs: [:])
        #expect(Self.descriptors(under: dir.path + "/gone-") == 5)
        try storage.deleteTopic(name: "gone")
        #expect(Self.descriptors(under: dir.path + "/gone-") == 0)
        #expect(storage.openFileStats.open == 1)
        try storage.close()
    }
}
