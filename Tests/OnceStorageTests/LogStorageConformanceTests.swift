import KafkaProtocol
import NIOCore
import Testing

@testable import OnceStorage

/// The behaviour every engine must share; each test runs once per engine.
@Suite("LogStorage conformance")
struct LogStorageConformanceTests {
    @Test(arguments: Engine.allCases)
    func createListAndDescribeTopics(engine: Engine) throws {
        try engine.with { storage in
            let b = try storage.createTopic(name: "b", partitions: 2, configs: ["retention.ms": "1000"])
            let a = try storage.createTopic(name: "a.topic_1-x", partitions: 1, configs: [:])
            #expect(storage.topics().map(\.name) == ["a.topic_1-x", "b"])
            #expect(storage.topic(named: "b") == b)
            #expect(b.partitionCount == 2 && b.configs == ["retention.ms": "1000"])
            #expect(a.id != b.id && a.id != .zero)
            #expect(storage.partition(topic: "b", partition: 1) != nil)
            #expect(storage.partition(topic: "b", partition: 2) == nil)
            #expect(storage.partition(topic: "b", partition: -1) == nil)
            #expect(storage.partition(topic: "nope", partition: 0) == nil)
            #expect(storage.topic(named: "nope") == nil)
        }
    }

    @Test(arguments: Engine.allCases)
    func createRefusesDuplicatesBadNamesAndBadConfigs(engine: Engine) throws {
        try engine.with { storage in
            try storage.createTopic(name: "t", partitions: 1, configs: [:])
            #expect(throws: StorageError.topicExists("t")) { try storage.createTopic(name: "t", partitions: 1, configs: [:]) }
            for bad in ["", ".", "..", "a/b", "sp ace", String(repeating: "x", count: 250)] {
                #expect(throws: StorageError.self) { try storage.createTopic(name: bad, partitions: 1, configs: [:]) }
            }
            #expect(throws: StorageError.self) { try storage.createTopic(name: "z", partitions: 0, configs: [:]) }
            #expect(throws: StorageError.invalidConfig("Unknown topic config name: no.such.key")) {
                try storage.createTopic(name: "z", partitions: 1, configs: ["no.such.key": "1"])
            }
            #expect(throws: StorageError.self) { try storage.createTopic(name: "z", partitions: 1, configs: ["segment.bytes": "big"]) }
            #expect(storage.topic(named: "z") == nil)
            #expect(storage.topics().map(\.name) == ["t"])
        }
    }

    @Test(arguments: Engine.allCases)
    func appendAssignsConsecutiveOffsetsAndReadReturnsThem(engine: Engine) throws {
        try engine.with { storage in
            try storage.createTopic(name: "t", partitions: 1, configs: [:])
            let log = try #require(storage.partition(topic: "t", partition: 0))
            #expect(log.logStartOffset == 0 && log.logEndOffset == 0)
            let first = try log.append(TestBatches.batch(records: 3, tag: 1))
            #expect(first == AppendResult(baseOffset: 0, lastOffset: 2, logEndOffset: 3))
            let second = try log.append(TestBatches.batch(records: 1, tag: 2))
            #expect(second == AppendResult(baseOffset: 3, lastOffset: 3, logEndOffset: 4))
            #expect(log.logEndOffset == 4)

            let batches = try TestBatches.decode(try log.read(from: 0, maxBytes: 1 << 20, limitOffset: .max))
            #expect(batches.map(\.header.baseOffset) == [0, 3])
            #expect(batches.map(\.records.count) == [3, 1])
            #expect(batches[1].records[0].value.map { Array($0.prefix(4)) } == Array("tag2".utf8))
            // Offsets inside a batch return the whole batch that holds them.
            #expect(try TestBatches.offsets(try log.read(from: 1, maxBytes: 1 << 20, limitOffset: .max)) == [0...2, 3...3])
            #expect(try TestBatches.offsets(try log.read(from: 3, maxBytes: 1 << 20, limitOffset: .max)) == [3...3])
        }
    }

    @Test(arguments: Engine.allCases)
    func oneAppendMayCarrySeveralBatches(engine: Engine) throws {
        try engine.with { storage in
            try storage.createTopic(name: "t", partitions: 1, configs: [:])
            let log = try #require(storage.partition(topic: "t", partition: 0))
            try log.appendBatches(1)
            let result = try log.append(
                TestBatches.concat([TestBatches.batch(records: 2), TestBatches.batch(records: 1), TestBatches.batch(records: 4)]))
            #expect(result == AppendResult(baseOffset: 1, lastOffset: 7, logEndOffset: 8))
            #expect(try TestBatches.offsets(try log.read(from: 0, maxBytes: 1 << 20, limitOffset: .max)) == [0...0, 1...2, 3...3, 4...7])
        }
    }

    @Test(arguments: Engine.allCases)
    func appendRefusesMalformedInputAndLeavesTheLogAlone(engine: Engine) throws {
        try engine.with { storage in
            try storage.createTopic(name: "t", partitions: 1, configs: [:])
            let log = try #require(storage.partition(topic: "t", partition: 0))
            try log.appendBatches(2)
            var cut = TestBatches.batch(records: 2)
            cut.moveWriterIndex(to: cut.writerIndex - 3)
            #expect(throws: StorageError.self) { try log.append(cut) }
            #expect(throws: StorageError.self) { try log.append(ByteBuffer()) }
            #expect(throws: StorageError.self) { try log.append(TestBatches.concat([TestBatches.batch(), ByteBuffer(bytes: [1, 2, 3])])) }
            #expect(log.logEndOffset == 2)
            #expect(try log.append(TestBatches.batch()).baseOffset == 2)
            #expect(try TestBatches.offsets(try log.read(from: 0, maxBytes: 1 << 20, limitOffset: .max)) == [0...0, 1...1, 2...2])
        }
    }

    @Test(arguments: Engine.allCases)
    func readHonoursMaxBytesButReturnsAtLeastOneBatch(engine: Engine) throws {
        try engine.with { storage in
            try storage.createTopic(name: "t", partitions: 1, configs: [:])
            let log = try #require(storage.partition(topic: "t", partition: 0))
            try log.appendBatches(5, valueSize: 200)
            let size = try log.read(from: 0, maxBytes: 1, limitOffset: .max).readableBytes
            #expect(size > 200)
            #expect(try TestBatches.offsets(try log.read(from: 0, maxBytes: 1, limitOffset: .max)) == [0...0])
            #expect(try TestBatches.offsets(try log.read(from: 0, maxBytes: 0, limitOffset: .max)) == [0...0])
            #expect(try TestBatches.offsets(try log.read(from: 1, maxBytes: size * 2, limitOffset: .max)) == [1...1, 2...2])
            #expect(try TestBatches.offsets(try log.read(from: 1, maxBytes: size * 2 - 1, limitOffset: .max)) == [1...1])
            #expect(try TestBatches.offsets(try log.read(from: 3, maxBytes: .max, limitOffset: .max)) == [3...3, 4...4])
        }
    }

    @Test(arguments: Engine.allCases)
    func readStopsBeforeLimitOffset(engine: Engine) throws {
        try engine.with { storage in
            try storage.createTopic(name: "t", partitions: 1, configs: [:])
            let log = try #require(storage.partition(topic: "t", partition: 0))
            _ = try log.append(TestBatches.batch(records: 2))  // 0...1
            _ = try log.append(TestBatches.batch(records: 2))  // 2...3
            _ = try log.append(TestBatches.batch(records: 2))  // 4...5
            #expect(try TestBatches.offsets(try log.read(from: 0, maxBytes: 1 << 20, limitOffset: 4)) == [0...1, 2...3])
            // A batch that reaches the limit is held back whole, even the first one.
            #expect(try TestBatches.offsets(try log.read(from: 0, maxBytes: 1 << 20, limitOffset: 3)) == [0...1])
            #expect(try log.read(from: 0, maxBytes: 1 << 20, limitOffset: 1).readableBytes == 0)
            #expect(try log.read(from: 2, maxBytes: 1 << 20, limitOffset: 2).readableBytes == 0)
            #expect(try TestBatches.offsets(try log.read(from: 5, maxBytes: 1 << 20, limitOffset: 6)) == [4...5])
        }
    }

    @Test(arguments: Engine.allCases)
    func readOutsideTheLogThrowsAndAtTheEndIsEmpty(engine: Engine) throws {
        try engine.with { storage in
            try storage.createTopic(name: "t", partitions: 1, configs: [:])
            let log = try #require(storage.partition(topic: "t", partition: 0))
            #expect(try log.read(from: 0, maxBytes: 100, limitOffset: .max).readableBytes == 0)
            try log.appendBatches(3)
            #expect(try log.read(from: 3, maxBytes: 100, limitOffset: .max).readableBytes == 0)
            #expect(throws: StorageError.offsetOutOfRange(requested: 4, logStart: 0, logEnd: 3)) {
                try log.read(from: 4, maxBytes: 100, limitOffset: .max)
            }
            #expect(throws: StorageError.offsetOutOfRange(requested: -1, logStart: 0, logEnd: 3)) {
                try log.read(from: -1, maxBytes: 100, limitOffset: .max)
            }
        }
    }

    @Test(arguments: Engine.allCases)
    func everyOffsetReadsFromItsBatchWithADenseIndex(engine: Engine) throws {
        try engine.with { storage in
            try storage.createTopic(name: "t", partitions: 1, configs: ["index.interval.bytes": "150"])
            let log = try #require(storage.partition(topic: "t", partition: 0))
            var ranges: [ClosedRange<Int64>] = []
            for i in 0..<60 {
                let r = try log.append(TestBatches.batch(records: 1 + i % 4, valueSize: 10 + (i * 37) % 90, tag: i))
                ranges.append(r.baseOffset...r.lastOffset)
            }
            for range in ranges {
                for offset in range {
                    let got = try TestBatches.offsets(try log.read(from: offset, maxBytes: 1, limitOffset: .max))
                    #expect(got == [range], "offset \(offset)")
                }
            }
        }
    }

    @Test(arguments: Engine.allCases)
    func timestampsFindTheFirstBatchReachingThem(engine: Engine) throws {
        try engine.with { storage in
            try storage.createTopic(name: "t", partitions: 1, configs: ["index.interval.bytes": "100"])
            let log = try #require(storage.partition(topic: "t", partition: 0))
            #expect(try log.offset(forTimestamp: 0) == nil)
            #expect(log.maxTimestamp() == nil)
            let base = TestBatches.baseTime
            // Batch i (offsets 2i, 2i+1) has max timestamp base + 10i + 1, except a late batch 5.
            for i in 0..<20 {
                let t = i == 5 ? base + 1000 : base + Int64(10 * i)
                _ = try log.append(TestBatches.batch(records: 2, timestamp: t, tag: i))
            }
            #expect(try log.offset(forTimestamp: 0)! == (0, base + 1))
            #expect(try log.offset(forTimestamp: base + 1)! == (0, base + 1))
            #expect(try log.offset(forTimestamp: base + 2)! == (2, base + 11))
            #expect(try log.offset(forTimestamp: base + 41)! == (8, base + 41))
            #expect(try log.offset(forTimestamp: base + 42)! == (10, base + 1001))
            #expect(try log.offset(forTimestamp: base + 192)! == (10, base + 1001))
            #expect(try log.offset(forTimestamp: base + 1001)! == (10, base + 1001))
            #expect(try log.offset(forTimestamp: base + 1002) == nil)
            #expect(log.maxTimestamp()! == (10, base + 1001))
        }
    }

    @Test(arguments: Engine.allCases)
    func deleteTopicRemovesItAndItsPartitions(engine: Engine) throws {
        try engine.with { storage in
            let before = try storage.createTopic(name: "t", partitions: 2, configs: [:])
            let log = try #require(storage.partition(topic: "t", partition: 1))
            try log.appendBatches(3)
            try storage.deleteTopic(name: "t")
            #expect(storage.topic(named: "t") == nil)
            #expect(storage.partition(topic: "t", partition: 0) == nil)
            #expect(storage.topics().isEmpty)
            #expect(throws: StorageError.unknownTopic("t")) { try log.append(TestBatches.batch()) }
            #expect(throws: StorageError.unknownTopic("t")) { try storage.deleteTopic(name: "t") }

            let after = try storage.createTopic(name: "t", partitions: 1, configs: [:])
            #expect(after.id != before.id)
            let fresh = try #require(storage.partition(topic: "t", partition: 0))
            #expect(fresh.logEndOffset == 0)
            #expect(try fresh.append(TestBatches.batch()).baseOffset == 0)
        }
    }

    @Test(arguments: Engine.allCases)
    func waitDurableReturnsForDataThatIsThere(engine: Engine) async throws {
        let storage: any LogStorage
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        var drop: () -> Void = {}
        defer { drop() }
        switch engine {
        case .memory: storage = MemoryLogStorage()
        case .file, .fileOneHandle: storage = try engine.makeFileStorage(dir.path)
        case .postgres: (storage, drop) = try Engine.makePostgresStorage()
        }
        try storage.createTopic(name: "t", partitions: 1, configs: [:])
        let log = try #require(storage.partition(topic: "t", partition: 0))
        let result = try log.append(TestBatches.batch())
        try await log.waitDurable(upTo: result.logEndOffset)
        try storage.close()
    }

    @Test(arguments: Engine.allCases)
    func retentionBySizeDeletesWholeOldSegments(engine: Engine) throws {
        try engine.with { storage in
            let batchSize = TestBatches.batch(valueSize: 100).readableBytes
            // Three batches per segment; keep at least five batches' worth.
            try storage.createTopic(
                name: "t", partitions: 1,
                configs: ["segment.bytes": "\(batchSize * 3)", "retention.bytes": "\(batchSize * 5)"])
            let log = try #require(storage.partition(topic: "t", partition: 0))
            try log.appendBatches(10, valueSize: 100)  // segments [0-2] [3-5] [6-8] [9]
            storage.enforceRetention(nowMs: TestBatches.baseTime)
            // 10 batches, limit 5: deleting [0-2] leaves 7, deleting [3-5] would leave 4 < 5.
            #expect(log.logStartOffset == 3)
            #expect(log.logEndOffset == 10)
            #expect(throws: StorageError.offsetOutOfRange(requested: 2, logStart: 3, logEnd: 10)) {
                try log.read(from: 2, maxBytes: 1 << 20, limitOffset: .max)
            }
            #expect(try TestBatches.offsets(try log.read(from: 3, maxBytes: batchSize, limitOffset: .max)) == [3...3])
            #expect(try TestBatches.offsets(try log.read(from: 9, maxBytes: 1 << 20, limitOffset: .max)) == [9...9])
            storage.enforceRetention(nowMs: TestBatches.baseTime)
            #expect(log.logStartOffset == 3)
        }
    }

    @Test(arguments: Engine.allCases)
    func retentionByTimeDeletesExpiredSegmentsIncludingTheActiveOne(engine: Engine) throws {
        try engine.with { storage in
            let batchSize = TestBatches.batch().readableBytes
            try storage.createTopic(
                name: "t", partitions: 1, configs: ["segment.bytes": "\(batchSize * 2)", "retention.ms": "1000"])
            let log = try #require(storage.partition(topic: "t", partition: 0))
            try log.appendBatches(5)  // timestamps base+0 ... base+4; segments [0-1] [2-3] [4]
            let base = TestBatches.baseTime
            storage.enforceRetention(nowMs: base + 1000)
            #expect(log.logStartOffset == 0)
            storage.enforceRetention(nowMs: base + 1002)  // [0-1] has max base+1: expired
            #expect(log.logStartOffset == 2)
            #expect(throws: StorageError.self) { try log.read(from: 1, maxBytes: 100, limitOffset: .max) }
            storage.enforceRetention(nowMs: base + 10_000)  // everything expired, active included
            #expect(log.logStartOffset == 5)
            #expect(log.logEndOffset == 5)
            #expect(try log.read(from: 5, maxBytes: 100, limitOffset: .max).readableBytes == 0)
            #expect(try log.append(TestBatches.batch()).baseOffset == 5)
            #expect(try TestBatches.offsets(try log.read(from: 5, maxBytes: 100, limitOffset: .max)) == [5...5])
        }
    }

    @Test(arguments: Engine.allCases)
    func retentionMinusOneKeepsEverything(engine: Engine) throws {
        try engine.with { storage in
            let batchSize = TestBatches.batch().readableBytes
            try storage.createTopic(name: "t", partitions: 1, configs: ["segment.bytes": "\(batchSize)", "retention.ms": "-1"])
            let log = try #require(storage.partition(topic: "t", partition: 0))
            try log.appendBatches(4)
            storage.enforceRetention(nowMs: .max / 2)
            #expect(log.logStartOffset == 0)
            #expect(try TestBatches.offsets(try log.read(from: 0, maxBytes: 1 << 20, limitOffset: .max)).first == 0...0)
        }
    }
}
