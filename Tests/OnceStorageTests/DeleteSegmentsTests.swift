import Testing

@testable import OnceStorage

@Suite("Deleting segments below an offset")
struct DeleteSegmentsTests {
    @Test(arguments: Engine.allCases)
    func deletesWholeSegmentsOnly(engine: Engine) throws {
        try engine.with { storage in
            // Small segments: each holds a few single-record batches.
            try storage.createTopic(name: "t", partitions: 1, configs: ["segment.bytes": "300"])
            let log = try #require(storage.partition(topic: "t", partition: 0))
            try log.appendBatches(20, valueSize: 40)
            #expect(log.logStartOffset == 0)
            #expect(try log.deleteSegments(below: 0) == 0)

            let deleted = try log.deleteSegments(below: 10)
            #expect(deleted > 0)
            let start = log.logStartOffset
            #expect(start > 0 && start <= 10, "only whole segments below 10 go")
            #expect(try !TestBatches.offsets(try log.read(from: 10, maxBytes: 1 << 20, limitOffset: .max)).isEmpty)
            #expect(throws: StorageError.self) { try log.read(from: start - 1, maxBytes: 1 << 20, limitOffset: .max) }

            // Never the active segment: the log keeps its end and accepts appends.
            _ = try log.deleteSegments(below: .max)
            #expect(log.logEndOffset == 20)
            #expect(log.logStartOffset <= 20)
            #expect(try log.append(TestBatches.batch()).baseOffset == 20)
        }
    }
}
