import KafkaProtocol
import NIOCore
import Testing

@Suite struct RecordBatchValidationTests {
    private func expectRejection(
        _ buffer: ByteBuffer, _ expected: RecordValidationError, code: Int16,
        allowMultipleBatches: Bool = false, maxBatchSize: Int = .max,
        sourceLocation: SourceLocation = #_sourceLocation
    ) {
        do {
            let headers = try RecordBatchValidator.validate(
                buffer, allowMultipleBatches: allowMultipleBatches, maxBatchSize: maxBatchSize)
            Issue.record("accepted \(headers.count) batches", sourceLocation: sourceLocation)
        } catch {
            #expect(error == expected, sourceLocation: sourceLocation)
            #expect(error.kafkaErrorCode == code, sourceLocation: sourceLocation)
        }
    }

    @Test func acceptsAProducedBatch() throws {
        let buffer = BatchFixtures.sampleBatch(producerId: 8, baseSequence: 0)
        let headers = try RecordBatchValidator.validate(buffer)
        #expect(headers.count == 1)
        #expect(headers[0].recordCount == 4 && headers[0].producerId == 8)
        #expect(headers[0] == (try RecordBatchHeader(reading: buffer, at: 0)))
    }

    @Test func acceptsABatchFromAnotherImplementation() throws {
        let headers = try RecordBatchValidator.validate(ByteBuffer(bytes: RecordBatchTests.kafkaPythonBatch))
        #expect(headers.map(\.producerId) == [4242])
    }

    @Test func positionsAreRelativeToTheReadableBytes() throws {
        var buffer = ByteBuffer(bytes: [0xEE, 0xEE])
        var batch = BatchFixtures.sampleBatch()
        buffer.writeBuffer(&batch)
        buffer.moveReaderIndex(forwardBy: 2)
        #expect(try RecordBatchValidator.validate(buffer).count == 1)
        buffer.setInteger(Int8(1), at: 2 + 16)
        expectRejection(buffer, .unsupportedMagic(position: 0, magic: 1), code: 87)
    }

    @Test func emptyRecordSetIsRefused() {
        expectRejection(ByteBuffer(), .noBatches, code: 87)
    }

    @Test func oneBatchPerPartitionUnlessAllowed() throws {
        var set = BatchFixtures.sampleBatch(baseOffset: 0)
        var second = BatchFixtures.sampleBatch(baseOffset: 0)
        set.writeBuffer(&second)
        expectRejection(set, .multipleBatches, code: 87)
        #expect(try RecordBatchValidator.validate(set, allowMultipleBatches: true).count == 2)
    }

    @Test func everyTruncationIsCaught() {
        let whole = BatchFixtures.sampleBatch()
        for cut in 1..<whole.readableBytes {
            expectRejection(whole.getSlice(at: 0, length: cut)!, .truncatedBatch(position: 0), code: 2)
        }
    }

    @Test func trailingPartialBatchIsCaught() {
        var set = BatchFixtures.sampleBatch()
        let first = set.readableBytes
        var partial = BatchFixtures.sampleBatch()
        set.writeBytes(partial.readBytes(length: 30)!)
        expectRejection(set, .truncatedBatch(position: first), code: 2, allowMultipleBatches: true)
    }

    @Test func everyFlippedCoveredByteBreaksTheCRC() {
        let whole = BatchFixtures.sampleBatch()
        let stored = whole.getInteger(at: 17, as: UInt32.self)!
        for index in 21..<whole.readableBytes {
            var corrupt = whole
            corrupt.setInteger(corrupt.getInteger(at: index, as: UInt8.self)! ^ 0x40, at: index)
            let covered = corrupt.getBytes(at: 21, length: corrupt.readableBytes - 21)!
            expectRejection(
                corrupt, .crcMismatch(position: 0, stored: stored, computed: referenceCRC32C(covered)), code: 2)
        }
    }

    @Test func storedCRCItselfCorrupted() {
        var buffer = BatchFixtures.sampleBatch()
        let right = buffer.getInteger(at: 17, as: UInt32.self)!
        buffer.setInteger(right ^ 0x8000_0000, at: 17)
        expectRejection(buffer, .crcMismatch(position: 0, stored: right ^ 0x8000_0000, computed: right), code: 2)
    }

    @Test func fieldsBeforeTheCRCAreNotCovered() throws {
        var buffer = BatchFixtures.sampleBatch()
        buffer.setInteger(Int64(123_456), at: 0)
        buffer.setInteger(Int32(77), at: 12)
        #expect(try RecordBatchValidator.validate(buffer).map(\.baseOffset) == [123_456])
    }

    @Test(arguments: [Int8(0), 1, 3, -1])
    func otherMagicIsRefused(_ magic: Int8) {
        var buffer = BatchFixtures.sampleBatch()
        buffer.setInteger(magic, at: 16)
        expectRejection(buffer, .unsupportedMagic(position: 0, magic: magic), code: 87)
    }

    @Test(arguments: [Int32(-1), 0, 13, 48])
    func implausibleBatchLengthIsRefused(_ length: Int32) {
        var buffer = BatchFixtures.sampleBatch()
        buffer.setInteger(length, at: 8)
        // Trim to the claimed size, so the only thing wrong is the length itself.
        let trimmed = buffer.getSlice(at: 0, length: max(12, 12 + Int(length)))!
        expectRejection(trimmed, .invalidBatchLength(position: 0, length: length), code: 2)
    }

    @Test func lengthBeyondTheBytesIsATruncation() {
        var buffer = BatchFixtures.sampleBatch()
        buffer.setInteger(Int32(buffer.readableBytes), at: 8)
        expectRejection(buffer, .truncatedBatch(position: 0), code: 2)
    }

    @Test func recordCountMustMatchTheOffsetRange() {
        var mismatch = BatchFixtures.sampleBatch()
        mismatch.setInteger(Int32(2), at: 23)
        BatchFixtures.reseal(&mismatch)
        expectRejection(mismatch, .invalidRecordCount(position: 0, recordCount: 4, lastOffsetDelta: 2), code: 87)

        let empty = RecordBatch.encode(records: [], baseTimestamp: 0)
        expectRejection(empty, .invalidRecordCount(position: 0, recordCount: 0, lastOffsetDelta: 0), code: 87)
    }

    @Test func clientsCannotWriteControlBatches() {
        let marker = RecordBatch.encodeMarker(
            .marker(commit: true, coordinatorEpoch: 0), producerId: 1, producerEpoch: 0, timestamp: 0)
        expectRejection(marker, .controlBatchFromClient(position: 0), code: 87)
    }

    @Test func idempotentBatchesNeedASequence() {
        let buffer = BatchFixtures.sampleBatch(producerId: 5, baseSequence: -1)
        expectRejection(buffer, .missingSequence(position: 0, producerId: 5), code: 87)
    }

    @Test func unknownCompressionIsRefused() {
        var buffer = BatchFixtures.sampleBatch()
        buffer.setInteger(Int16(5), at: 21)
        BatchFixtures.reseal(&buffer)
        expectRejection(buffer, .unknownCompression(position: 0, codec: 5), code: 2)
    }

    @Test func uncompressedRecordsLabelledZstdAreCorrupt() {
        // Produced batches are inflated to check their records, so a codec bit over plain records fails.
        var buffer = BatchFixtures.sampleBatch()
        buffer.setInteger(Int16(CompressionCodec.zstd.rawValue), at: 21)
        BatchFixtures.reseal(&buffer)
        do {
            _ = try RecordBatchValidator.validate(buffer)
            Issue.record("accepted plain records labelled zstd")
        } catch {
            #expect(error.kafkaErrorCode == 2)
        }
    }

    @Test func oversizedBatchIsMessageTooLarge() throws {
        let buffer = BatchFixtures.sampleBatch()
        let size = buffer.readableBytes
        expectRejection(buffer, .batchTooLarge(position: 0, size: size, limit: size - 1), code: 10, maxBatchSize: size - 1)
        #expect(try RecordBatchValidator.validate(buffer, maxBatchSize: size).count == 1)
    }

    // MARK: Recovery scan

    private func threeBatches() -> (ByteBuffer, [Int]) {
        var set = ByteBuffer()
        var sizes: [Int] = []
        for base in [Int64(0), 4, 8] {
            var batch = BatchFixtures.sampleBatch(baseOffset: base)
            sizes.append(batch.readableBytes)
            set.writeBuffer(&batch)
        }
        return (set, sizes)
    }

    @Test func scanKeepsEverythingWhenIntact() {
        let (set, sizes) = threeBatches()
        let scan = RecordBatchValidator.scanValidPrefix(set)
        #expect(scan.validBytes == sizes.reduce(0, +))
        #expect(scan.headers.map(\.baseOffset) == [0, 4, 8])
    }

    @Test func scanStopsAtATornTail() {
        let (set, sizes) = threeBatches()
        let firstTwo = sizes[0] + sizes[1]
        for cut in [firstTwo, firstTwo + 1, firstTwo + 11, firstTwo + 12, firstTwo + 61, set.readableBytes - 1] {
            let scan = RecordBatchValidator.scanValidPrefix(set.getSlice(at: 0, length: cut)!)
            #expect(scan.validBytes == firstTwo, "cut at \(cut)")
            #expect(scan.headers.map(\.baseOffset) == [0, 4])
        }
    }

    @Test func scanStopsAtACorruptBatch() {
        var (set, sizes) = threeBatches()
        let inSecond = sizes[0] + 70
        set.setInteger(set.getInteger(at: inSecond, as: UInt8.self)! ^ 0xFF, at: inSecond)
        let scan = RecordBatchValidator.scanValidPrefix(set)
        #expect(scan.validBytes == sizes[0])
        #expect(scan.headers.count == 1)
    }

    @Test func scanStopsAtGarbage() {
        var (set, sizes) = threeBatches()
        set.setInteger(Int32(0), at: sizes[0] + 8)  // a zeroed length, as a preallocated file tail reads
        #expect(RecordBatchValidator.scanValidPrefix(set).validBytes == sizes[0])
        #expect(RecordBatchValidator.scanValidPrefix(ByteBuffer()).validBytes == 0)
        #expect(RecordBatchValidator.scanValidPrefix(ByteBuffer(repeating: 0, count: 4096)).validBytes == 0)
    }
}
