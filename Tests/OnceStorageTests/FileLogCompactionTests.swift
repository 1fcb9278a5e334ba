import Foundation
import KafkaProtocol
import NIOCore
import OnceCore
import Testing

@testable import OnceStorage

/// The file engine's cleaner: what a pass leaves in the log, and how a partition recovers from a
/// clean that a crash interrupted.
@Suite("FileLog compaction")
struct FileLogCompactionTests {
    let dir: TemporaryDirectory

    init() throws {
        dir = try TemporaryDirectory()
    }

    static let compacted = [
        "cleanup.policy": "compact", "segment.bytes": "200", "min.cleanable.dirty.ratio": "0.01",
    ]

    func open() throws -> FileLogStorage {
        try FileLogStorage(directory: dir.path, logger: quietLogger)
    }

    static func keyed(_ pairs: [(String, String?)]) -> ByteBuffer {
        let records = pairs.enumerated().map { i, pair in
            Record(timestampDelta: Int64(i), offsetDelta: Int32(i), key: Array(pair.0.utf8), value: pair.1.map { Array($0.utf8) })
        }
        return RecordBatch.encode(records: records, baseTimestamp: TestBatches.baseTime)
    }

    /// (offset, key, value) of every record from the log start.
    static func contents(_ log: PartitionLog) throws -> [(Int64, String, String?)] {
        var rows: [(Int64, String, String?)] = []
        var offset = log.logStartOffset
        // A read stops at its segment's end, as a fetch does; gaps are skipped by reading on.
        while offset < log.logEndOffset {
            let batches = try RecordBatch.decodeAll(from: try log.read(from: offset, maxBytes: 1 << 24, limitOffset: .max))
            guard let last = batches.last else { break }
            for batch in batches {
                rows += batch.records.map { r in
                    (batch.offset(of: r), String(decoding: r.key ?? [], as: UTF8.self), r.value.map { String(decoding: $0, as: UTF8.self) })
                }
            }
            offset = last.header.lastOffset + 1
        }
        return rows
    }

    static func describe(_ rows: [(Int64, String, String?)]) -> [String] {
        rows.map { "\($0.0):\($0.1)=\($0.2 ?? "∅")" }
    }

    /// Ten overwrites of three keys and a tombstone, each in its own batch, then an active segment.
    func fill(_ storage: FileLogStorage) throws -> FilePartitionLog {
        try storage.createTopic(name: "c", partitions: 1, configs: Self.compacted)
        let log = try #require(storage.partition(topic: "c", partition: 0) as? FilePartitionLog)
        for round in 0..<3 {
            for key in ["a", "b", "c"] { _ = try log.append(Self.keyed([(key, "\(key)\(round)")])) }
        }
        _ = try log.append(Self.keyed([("b", nil)]))
        _ = try log.append(Self.keyed([("d", "d0"), ("a", "a3")]))
        // Everything above is sealed once this lands in a new segment.
        log.state.withLock { s in try? log.roll(&s, nowMs: currentTimeMillis()) }
        _ = try log.append(Self.keyed([("e", "e0")]))
        return log
    }

    @Test func anOffsetMapTooSmallForTheBacklogCleansItOverSeveralPasses() throws {
        defer { dir.remove() }
        let storage = try open()
        let log = try fill(storage)
        // Three keys a pass: the first maps a, b and c and stops at d.
        let bound = 4 * OffsetMap.bytesPerEntry
        let first = try #require(
            try log.clean(nowMs: currentTimeMillis(), throttle: CleanerThrottle(maxBytesPerSecond: nil), dedupeBufferBytes: bound))
        #expect(first.cleaned)
        #expect(first.offsetMapBytes <= bound)
        // a at 11 was not mapped, so a at 6 stays for now; d and a at 10 and 11 are untouched.
        #expect(Self.describe(try Self.contents(log)) == ["6:a=a2", "8:c=c2", "9:b=∅", "10:d=d0", "11:a=a3", "12:e=e0"])
        let second = try #require(
            try log.clean(nowMs: currentTimeMillis(), throttle: CleanerThrottle(maxBytesPerSecond: nil), dedupeBufferBytes: bound))
        #expect(second.cleaned)
        #expect(second.offsetMapBytes <= bound)
        // The same as one pass with room for every key.
        #expect(Self.describe(try Self.contents(log)) == ["8:c=c2", "9:b=∅", "10:d=d0", "11:a=a3", "12:e=e0"])
        let third = try #require(
            try log.clean(nowMs: currentTimeMillis(), throttle: CleanerThrottle(maxBytesPerSecond: nil), dedupeBufferBytes: bound))
        #expect(!third.cleaned)
        try storage.close()
    }

    @Test func aPassKeepsTheLatestValuePerKeyAtItsOriginalOffset() throws {
        defer { dir.remove() }
        let storage = try open()
        let log = try fill(storage)
        let before = log.segmentBaseOffsets.count
        let report = try #require(try log.clean(nowMs: currentTimeMillis(), throttle: CleanerThrottle(maxBytesPerSecond: nil)))
        #expect(report.cleaned)
        #expect(report.dirtyRatio == 1)
        // Each key's last record, at the offset it was written at; the tombstone of b stays until
        // delete.retention.ms has passed, and the active segment is not touched.
        let expected = ["8:c=c2", "9:b=∅", "10:d=d0", "11:a=a3", "12:e=e0"]
        #expect(Self.describe(try Self.contents(log)) == expected)
        #expect(log.segmentBaseOffsets.count < before)
        #expect(log.logEndOffset == 13)
        // An offset in a gap reads on from the next batch, by copy and by place (sendfile); a
        // timestamp lookup finds the first batch still there.
        let fromGap = try RecordBatch.decodeAll(from: try log.read(from: 3, maxBytes: 1 << 20, limitOffset: .max))
        #expect(fromGap.first?.header.baseOffset == 8)
        let located = try #require(try log.locate(from: 3, maxBytes: 1 << 20, limitOffset: .max))
        #expect(try RecordBatch.decodeAll(from: try located.read()).first?.header.baseOffset == 8)
        #expect(try log.offset(forTimestamp: TestBatches.baseTime)?.offset == 8)
        // Nothing is dirty now, so a second pass leaves the log alone.
        let again = try #require(try log.clean(nowMs: currentTimeMillis(), throttle: CleanerThrottle(maxBytesPerSecond: nil)))
        #expect(!again.cleaned)
        try storage.close()

        let reopened = try open()
        let log2 = try #require(reopened.partition(topic: "c", partition: 0))
        #expect(Self.describe(try Self.contents(log2)) == expected)
        #expect(log2.logEndOffset == 13)
        try reopened.close()
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path + "/c-0")
        #expect(!names.contains { $0.hasSuffix(".cleaned") || $0.hasSuffix(".swap") })
    }

    @Test func aTombstoneGoesInTheFirstPassAfterTheHorizonTheFirstPassStamped() throws {
        defer { dir.remove() }
        let storage = try open()
        let log = try fill(storage)
        let throttle = CleanerThrottle(maxBytesPerSecond: nil)
        let start = currentTimeMillis()
        let horizon = start + 86_400_000
        _ = try log.clean(nowMs: start, throttle: throttle)
        #expect(Self.describe(try Self.contents(log)).contains("9:b=∅"))
        // The horizon is in the tombstone's batch (KIP-534), its record's timestamp unchanged.
        let stamped = try #require(
            try RecordBatch.decodeAll(from: try log.read(from: 9, maxBytes: 1 << 20, limitOffset: .max)).first)
        #expect(stamped.header.baseOffset == 9)
        #expect(stamped.header.hasDeleteHorizon)
        #expect(stamped.header.baseTimestamp == horizon)
        #expect(stamped.timestamp(of: stamped.records[0]) == TestBatches.baseTime)
        try storage.close()

        // A restart does not move the horizon: before it nothing is due, after it the pass runs
        // with nothing new written and takes the tombstone.
        let reopened = try open()
        let log2 = try #require(reopened.partition(topic: "c", partition: 0) as? FilePartitionLog)
        let early = try #require(try log2.clean(nowMs: horizon - 1, throttle: throttle))
        #expect(!early.cleaned)
        #expect(Self.describe(try Self.contents(log2)).contains("9:b=∅"))
        let due = try #require(try log2.clean(nowMs: horizon, throttle: throttle))
        #expect(due.cleaned)
        #expect(Self.describe(try Self.contents(log2)) == ["8:c=c2", "10:d=d0", "11:a=a3", "12:e=e0"])
        let after = try #require(try log2.clean(nowMs: horizon + 1, throttle: throttle))
        #expect(!after.cleaned, "nothing is left awaiting a horizon")
        try reopened.close()
    }

    @Test func aCheckpointFromBeforeTheHorizonMakesThePassDueAtOnce() throws {
        defer { dir.remove() }
        let storage = try open()
        let log = try fill(storage)
        let throttle = CleanerThrottle(maxBytesPerSecond: nil)
        _ = try log.clean(nowMs: currentTimeMillis(), throttle: throttle)
        try storage.close()
        // The 8-byte checkpoint an older broker wrote: where it cleaned up to, no horizon.
        let path = dir.path + "/c-0/" + FilePartitionLog.cleanerCheckpointFileName
        let end = try FilePartitionLog.readCleanerCheckpoint(directory: dir.path + "/c-0").firstDirtyOffset
        let old = (0..<8).map { UInt8(truncatingIfNeeded: end >> (56 - 8 * $0)) }
        try PosixFile.writeAtomically(StateDocument.encode(old), to: path, directory: dir.path + "/c-0")
        #expect(try FilePartitionLog.readCleanerCheckpoint(directory: dir.path + "/c-0") == .init(firstDirtyOffset: end, earliestDeleteHorizonMs: .min))

        let reopened = try open()
        let log2 = try #require(reopened.partition(topic: "c", partition: 0) as? FilePartitionLog)
        // Nothing is dirty, yet the pass runs: it finds the stamped tombstone and writes its horizon.
        _ = try log2.clean(nowMs: currentTimeMillis(), throttle: throttle)
        let checkpoint = try FilePartitionLog.readCleanerCheckpoint(directory: dir.path + "/c-0")
        #expect(checkpoint.firstDirtyOffset == end)
        #expect(checkpoint.earliestDeleteHorizonMs > currentTimeMillis() && checkpoint.earliestDeleteHorizonMs < .max)
        try reopened.close()
    }

    /// Many more keys than the map holds, written as one backlog: every pass holds the same bounded
    /// state however many records the log has, and the passes together leave what one unbounded
    /// pass would.
    @Test func aPassHoldsBoundedStateWhateverTheBacklog() throws {
        defer { dir.remove() }
        let storage = try open()
        let bound = 1000 * OffsetMap.bytesPerEntry
        var peaks: [Int: Int] = [:]
        for (name, keys) in [("small", 2_000), ("large", 20_000)] {
            try storage.createTopic(
                name: name, partitions: 1, configs: Self.compacted.merging(["segment.bytes": "65536"]) { $1 })
            let log = try #require(storage.partition(topic: name, partition: 0) as? FilePartitionLog)
            // Two rounds over the keys, the second overwriting the first, plus a tombstone for
            // every tenth key, from idempotent producers so per-producer state is counted too.
            for round in 0..<2 {
                for start in stride(from: 0, to: keys, by: 50) {
                    let pairs = (start..<(start + 50)).map { k in
                        ("k\(k)", round == 1 && k % 10 == 0 ? nil : "v\(round)-\(k)") as (String, String?)
                    }
                    let records = pairs.enumerated().map { i, pair in
                        Record(offsetDelta: Int32(i), key: Array(pair.0.utf8), value: pair.1.map { Array($0.utf8) })
                    }
                    let producer = Int64(start / 50 % 7)
                    _ = try log.append(
                        RecordBatch.encode(
                            records: records, baseTimestamp: TestBatches.baseTime, producerId: producer, producerEpoch: 0,
                            baseSequence: Int32(round * keys + start) / 7))
                }
            }
            log.state.withLock { s in try? log.roll(&s, nowMs: currentTimeMillis()) }
            _ = try log.append(Self.keyed([("end", "e")]))
            var passes = 0
            var peak = 0
            while passes < 200 {
                let report = try #require(
                    try log.clean(nowMs: currentTimeMillis(), throttle: CleanerThrottle(maxBytesPerSecond: nil), dedupeBufferBytes: bound))
                let firstDirty = log.state.withLock { $0.firstDirtyOffset }
                guard report.cleaned || firstDirty < log.segmentBaseOffsets.last! else { break }
                #expect(report.offsetMapBytes <= bound)
                peak = max(peak, report.peakStateBytes)
                passes += 1
            }
            #expect(passes >= 2 * keys / 900, "the map took at most 900 keys a pass")
            let rows = try Self.contents(log)
            #expect(rows.count == keys + 1)
            #expect(rows.allSatisfy { $0.1 == "end" || $0.2 == (Int($0.1.dropFirst())! % 10 == 0 ? nil : "v1-\($0.1.dropFirst())") })
            peaks[keys] = peak
        }
        // The state is the map plus a few producers, the same for ten times the records.
        #expect(peaks[20_000]! <= bound + 1024)
        #expect(peaks[20_000] == peaks[2_000])
        try storage.close()
    }

    @Test func belowTheDirtyRatioOnlyMaxCompactionLagCleans() throws {
        defer { dir.remove() }
        let storage = try open()
        let log = try fill(storage)
        let throttle = CleanerThrottle(maxBytesPerSecond: nil)
        _ = try log.clean(nowMs: currentTimeMillis(), throttle: throttle)
        _ = try log.append(Self.keyed([("a", "a4")]))
        log.state.withLock { s in try? log.roll(&s, nowMs: currentTimeMillis()) }
        var config = try TopicConfig(overrides: Self.compacted.merging(["min.cleanable.dirty.ratio": "0.9"]) { $1 })
        log.updateConfig(config)
        let below = try #require(try log.clean(nowMs: currentTimeMillis(), throttle: throttle))
        #expect(!below.cleaned)
        #expect(below.dirtyRatio > 0 && below.dirtyRatio < 0.9)
        // The test batches carry timestamps from 2023: far older than a one-second lag.
        config = try TopicConfig(
            overrides: Self.compacted.merging(["min.cleanable.dirty.ratio": "0.9", "max.compaction.lag.ms": "1000"]) { $1 })
        log.updateConfig(config)
        let overdue = try #require(try log.clean(nowMs: currentTimeMillis(), throttle: throttle))
        #expect(overdue.cleaned)
        #expect(!Self.describe(try Self.contents(log)).contains("11:a=a3"))
        try storage.close()
    }

    @Test func segmentsYoungerThanMinCompactionLagAreNotCleaned() throws {
        defer { dir.remove() }
        let storage = try open()
        let log = try fill(storage)
        let before = Self.describe(try Self.contents(log))
        log.updateConfig(try TopicConfig(overrides: Self.compacted.merging(["min.compaction.lag.ms": String(Int64.max / 2)]) { $1 }))
        let report = try #require(try log.clean(nowMs: currentTimeMillis(), throttle: CleanerThrottle(maxBytesPerSecond: nil)))
        #expect(!report.cleaned)
        #expect(Self.describe(try Self.contents(log)) == before)
        try storage.close()
    }

    @Test func aRewrittenBatchKeepsItsOffsetsAndProducerFields() throws {
        let records = ["a", "b", "c"].enumerated().map { i, key in
            Record(timestampDelta: Int64(i), offsetDelta: Int32(i), key: Array(key.utf8), value: Array("v".utf8))
        }
        var original = RecordBatch.encode(
            records: records, baseOffset: 40, baseTimestamp: TestBatches.baseTime, producerId: 9, producerEpoch: 3,
            baseSequence: 17, isTransactional: true)
        let rewritten = try CleanedBatch.rewrite(original, keeping: [1])
        var copy = rewritten
        let batch = try RecordBatch.decode(from: &copy)
        let before = try RecordBatch.decode(from: &original)
        #expect(batch.header.baseOffset == 40 && batch.header.lastOffset == 42)
        #expect(batch.header.producerId == 9 && batch.header.producerEpoch == 3 && batch.header.baseSequence == 17)
        #expect(batch.header.lastSequence == before.header.lastSequence)
        #expect(batch.header.isTransactional && batch.header.baseTimestamp == before.header.baseTimestamp)
        #expect(batch.records.map { batch.offset(of: $0) } == [41])
        #expect(batch.records.map(\.key) == [Array("b".utf8)])
        let emptied = try CleanedBatch.rewrite(rewritten, keeping: [])
        var emptyCopy = emptied
        let empty = try RecordBatch.decode(from: &emptyCopy)
        #expect(empty.records.isEmpty && empty.header.lastOffset == 42 && empty.header.baseSequence == 17)
    }

    @Test(arguments: [CompressionCodec.gzip, .snappy, .lz4, .zstd])
    func aRewrittenCompressedBatchKeepsItsCodec(codec: CompressionCodec) throws {
        let records = (0..<20).map { i in
            Record(timestampDelta: Int64(i), offsetDelta: Int32(i), key: Array("k\(i % 4)".utf8), value: Array("value-\(i)".utf8))
        }
        var section = ByteBuffer()
        for record in records { record.encode(into: &section) }
        let body = try section.withUnsafeReadableBytes { try RecordCompressor.compress(codec, $0) }
        var header = RecordBatchHeader(
            baseOffset: 100, batchLength: Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead + body.count),
            partitionLeaderEpoch: -1, attributes: RecordBatchHeader.attributes(compression: codec), lastOffsetDelta: 19,
            baseTimestamp: TestBatches.baseTime, maxTimestamp: TestBatches.baseTime + 19, producerId: -1, producerEpoch: -1,
            baseSequence: -1, recordCount: 20)
        header.crc = 0
        var original = ByteBuffer()
        header.write(into: &original)
        original.writeBytes(body)
        let crc = original.withUnsafeReadableBytes {
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[RecordBatchHeader.attributesOffset...]))
        }
        original.setInteger(crc, at: RecordBatchHeader.crcOffset, endianness: .big)

        let rewritten = try CleanedBatch.rewrite(original, keeping: [16, 17, 18, 19])
        let rewrittenHeader = try RecordBatchHeader(reading: rewritten, at: 0)
        #expect(rewrittenHeader.compression == codec)
        #expect(rewrittenHeader.baseOffset == 100 && rewrittenHeader.lastOffset == 119 && rewrittenHeader.recordCount == 4)
        let kept = try CleanedBatch.records(of: rewrittenHeader, in: rewritten)
        #expect(kept == Array(records[16...]))
        let computed = rewritten.withUnsafeReadableBytes {
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[RecordBatchHeader.attributesOffset...]))
        }
        #expect(computed == rewrittenHeader.crc)
        #expect(rewrittenHeader.totalSize == rewritten.readableBytes)
    }

    @Test func aCompactOnlyTopicIsNeverTrimmedByRetention() throws {
        defer { dir.remove() }
        let storage = try open()
        try storage.createTopic(name: "c", partitions: 1, configs: Self.compacted.merging(["retention.ms": "1"]) { $1 })
        let log = try #require(storage.partition(topic: "c", partition: 0))
        for i in 0..<5 { _ = try log.append(Self.keyed([("k\(i)", "v")])) }
        storage.enforceRetention(nowMs: currentTimeMillis() + 10_000)
        #expect(log.logStartOffset == 0)
        try storage.close()
    }

    /// Builds the same partition in two directories, cleans one, and returns the cleaned
    /// segment's name and bytes: what a crash would have left committed as a swap.
    func cleanedCopy() throws -> (base: Int64, end: Int64, bytes: Data, expected: [String]) {
        let other = try TemporaryDirectory()
        defer { other.remove() }
        let cleanStorage = try FileLogStorage(directory: other.path, logger: quietLogger)
        let cleanLog = try fill(cleanStorage)
        let sourceBases = cleanLog.segmentBaseOffsets
        _ = try cleanLog.clean(nowMs: currentTimeMillis(), throttle: CleanerThrottle(maxBytesPerSecond: nil))
        let cleanedBases = cleanLog.segmentBaseOffsets
        let expected = Self.describe(try Self.contents(cleanLog))
        try cleanStorage.close()
        // The first cleaned segment replaced the sources from its base to the next cleaned base.
        let base = cleanedBases[0]
        let end = cleanedBases[1]
        #expect(sourceBases.filter { $0 >= base && $0 < end }.count > 1)
        let bytes = try Data(contentsOf: URL(fileURLWithPath: FileSegment.path(other.path + "/c-0", base, .log)))
        return (base, end, bytes, expected)
    }

    @Test func openingFinishesASwapACrashInterrupted() throws {
        defer { dir.remove() }
        let (base, end, bytes, _) = try cleanedCopy()
        let storage = try open()
        let log = try fill(storage)
        let original = Self.describe(try Self.contents(log))
        try storage.close()
        let partitionDir = dir.path + "/c-0"
        // Committed: the swap is named; the crash came before any source was deleted.
        try bytes.write(to: URL(fileURLWithPath: FilePartitionLog.swapPath(partitionDir, base, end)))

        let reopened = try open()
        let log2 = try #require(reopened.partition(topic: "c", partition: 0) as? FilePartitionLog)
        let after = Self.describe(try Self.contents(log2))
        // The swapped range holds only its survivors; everything else reads as before.
        #expect(after.count < original.count)
        #expect(Set(after).isSubset(of: Set(original)))
        #expect(after.last == original.last)
        #expect(log2.segmentBaseOffsets.filter { $0 >= base && $0 < end } == [base])
        let names = try FileManager.default.contentsOfDirectory(atPath: partitionDir)
        #expect(!names.contains { $0.hasSuffix(".swap") })
        try reopened.close()
    }

    @Test func openingDropsAHalfWrittenCleanedSegment() throws {
        defer { dir.remove() }
        let storage = try open()
        let log = try fill(storage)
        let original = Self.describe(try Self.contents(log))
        let bases = log.segmentBaseOffsets
        try storage.close()
        let partitionDir = dir.path + "/c-0"
        // Not committed: only a torn `.cleaned` file exists beside the sources.
        try Data([0, 0, 0, 1, 2, 3]).write(to: URL(fileURLWithPath: FilePartitionLog.cleanedPath(partitionDir, 0)))

        let reopened = try open()
        let log2 = try #require(reopened.partition(topic: "c", partition: 0) as? FilePartitionLog)
        #expect(Self.describe(try Self.contents(log2)) == original)
        #expect(log2.segmentBaseOffsets == bases)
        #expect(!FileManager.default.fileExists(atPath: FilePartitionLog.cleanedPath(partitionDir, 0)))
        try reopened.close()
    }

    @Test(arguments: [RecordBatchHeader.size, 100, 8 << 20])
    func theBatchReaderReturnsEveryBatchWholeWhateverItsChunkSize(chunkSize: Int) throws {
        defer { dir.remove() }
        let storage = try open()
        try storage.createTopic(name: "c", partitions: 1, configs: [:])
        let log = try #require(storage.partition(topic: "c", partition: 0) as? FilePartitionLog)
        let batches = [TestBatches.batch(records: 1), TestBatches.batch(records: 9, valueSize: 200), TestBatches.batch(records: 2)]
        for batch in batches { _ = try log.append(batch) }
        let (file, size) = try log.state.withLock { s in (try s.segments[0].log.open(), s.segments[0].size) }
        var reader = BatchReader(file: file, end: size, throttle: CleanerThrottle(maxBytesPerSecond: nil), chunkSize: chunkSize)
        var seen: [(Int, Int64, Int)] = []
        while let (position, header, bytes) = try reader.next() {
            var copy = bytes
            _ = try RecordBatch.decode(from: &copy)
            seen.append((position, header.baseOffset, bytes.readableBytes))
        }
        let sizes = batches.map(\.readableBytes)
        #expect(seen.map(\.0) == [0, sizes[0], sizes[0] + sizes[1]])
        #expect(seen.map(\.1) == [0, 1, 10])
        #expect(seen.map(\.2) == sizes)
        #expect(reader.bytesRead >= size)
        try storage.close()
    }

    @Test func theThrottleWaitsForTheBytesAlreadyMoved() {
        #expect(CleanerThrottle.delay(bytes: 1000, elapsedNs: 0, rate: 1000) == 1_000_000_000)
        #expect(CleanerThrottle.delay(bytes: 1000, elapsedNs: 400_000_000, rate: 1000) == 600_000_000)
        #expect(CleanerThrottle.delay(bytes: 1000, elapsedNs: 2_000_000_000, rate: 1000) == 0)
    }
}
