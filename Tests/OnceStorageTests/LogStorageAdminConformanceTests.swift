import KafkaProtocol
import NIOCore
import Testing

@testable import OnceStorage

/// Partition growth, config changes and log-start advances, the same on every engine.
@Suite("LogStorage admin conformance")
struct LogStorageAdminConformanceTests {
    @Test(arguments: Engine.allCases)
    func addPartitionsGrowsATopicAndNeverShrinksIt(engine: Engine) throws {
        try engine.with { storage in
            try storage.createTopic(name: "t", partitions: 1, configs: ["segment.bytes": "1024"])
            try #require(storage.partition(topic: "t", partition: 0)).appendBatches(2)
            let grown = try storage.addPartitions(topic: "t", count: 3)
            #expect(grown.partitionCount == 3 && storage.topic(named: "t")?.partitionCount == 3)
            let added = try #require(storage.partition(topic: "t", partition: 2))
            #expect(added.logStartOffset == 0 && added.logEndOffset == 0)
            #expect(try added.append(TestBatches.batch(records: 2)).baseOffset == 0)
            #expect(storage.partition(topic: "t", partition: 0)?.logEndOffset == 2)
            #expect(throws: StorageError.self) { try storage.addPartitions(topic: "t", count: 3) }
            #expect(throws: StorageError.self) { try storage.addPartitions(topic: "t", count: 2) }
            #expect(throws: StorageError.unknownTopic("nope")) { try storage.addPartitions(topic: "nope", count: 2) }
            #expect(storage.topic(named: "t")?.partitionCount == 3)
        }
    }

    @Test(arguments: Engine.allCases)
    func setTopicConfigsReplacesOverridesAndAppliesThem(engine: Engine) throws {
        try engine.with { storage in
            try storage.createTopic(name: "t", partitions: 1, configs: ["retention.ms": "1000"])
            let log = try #require(storage.partition(topic: "t", partition: 0))
            let meta = try storage.setTopicConfigs(topic: "t", configs: ["segment.bytes": "100", "compression.type": "lz4"])
            #expect(meta.configs == ["segment.bytes": "100", "compression.type": "lz4"])
            #expect(storage.topic(named: "t")?.configs == meta.configs)
            // The smaller segment size applies to the next appends: each batch now rolls a segment.
            try log.appendBatches(3, valueSize: 120)
            #expect(try log.deleteSegments(below: 2) == 2)
            #expect(log.logStartOffset == 2)
            #expect(throws: StorageError.self) { try storage.setTopicConfigs(topic: "t", configs: ["segment.bytes": "x"]) }
            #expect(throws: StorageError.unknownTopic("nope")) { try storage.setTopicConfigs(topic: "nope", configs: [:]) }
            #expect(storage.topic(named: "t")?.configs == meta.configs)
        }
    }

    @Test(arguments: Engine.allCases)
    func advanceLogStartHidesRecordsBelowItAndDropsWholeSegments(engine: Engine) throws {
        try engine.with { storage in
            try storage.createTopic(name: "t", partitions: 1, configs: ["segment.bytes": "200"])
            let log = try #require(storage.partition(topic: "t", partition: 0))
            try log.appendBatches(4, records: 2, valueSize: 100)  // offsets 0...7, one segment per batch
            let sizeBefore = log.sizeInBytes
            #expect(sizeBefore > 0)
            #expect(try log.advanceLogStart(to: 3) == 3)
            #expect(log.logStartOffset == 3)
            #expect((try? log.read(from: 2, maxBytes: 1 << 20, limitOffset: .max)) == nil)
            // The batch holding offset 3 starts at 2; it is returned whole, as Kafka does.
            #expect(try TestBatches.offsets(try log.read(from: 3, maxBytes: 1 << 20, limitOffset: .max)).first == 2...3)
            #expect(log.sizeInBytes < sizeBefore)
            #expect(try log.advanceLogStart(to: 1) == 3)  // never backwards
            #expect(throws: StorageError.offsetOutOfRange(requested: 9, logStart: 3, logEnd: 8)) { try log.advanceLogStart(to: 9) }
            #expect(try log.advanceLogStart(to: 8) == 8)
            #expect(log.sizeInBytes == 0)
            #expect(try log.read(from: 8, maxBytes: 1 << 20, limitOffset: .max).readableBytes == 0)
            #expect(try log.append(TestBatches.batch(records: 1)).baseOffset == 8)
            #expect(try TestBatches.offsets(try log.read(from: 8, maxBytes: 1 << 20, limitOffset: .max)) == [8...8])
        }
    }

    @Test(arguments: Engine.allCases)
    func timestampLookupNeverAnswersBelowTheLogStart(engine: Engine) throws {
        try engine.with { storage in
            try storage.createTopic(name: "t", partitions: 1, configs: [:])
            let log = try #require(storage.partition(topic: "t", partition: 0))
            try log.appendBatches(3, records: 2)  // offsets 0...5, timestamps baseTime+0...
            try log.advanceLogStart(to: 3)
            let found = try #require(try log.offset(forTimestamp: 0))
            #expect(found.offset == 3)
        }
    }
}
