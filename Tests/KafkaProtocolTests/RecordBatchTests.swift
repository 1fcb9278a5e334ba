import KafkaProtocol
import NIOCore
import Testing

/// Test helpers shared by the record batch suites.
enum BatchFixtures {
    static func bytes(hex: String) -> [UInt8] {
        var out: [UInt8] = []
        var chars = hex.makeIterator()
        while let hi = chars.next(), let lo = chars.next() {
            out.append(UInt8(String([hi, lo]), radix: 16)!)
        }
        return out
    }

    static func sampleRecords() -> [Record] {
        [
            Record(timestampDelta: 0, offsetDelta: 0, key: Array("key-0".utf8), value: Array("value-0".utf8)),
            Record(
                timestampDelta: 5, offsetDelta: 1, key: nil, value: Array("v1".utf8),
                headers: [RecordHeader(key: "h1", value: Array("x".utf8)), RecordHeader(key: "h2", value: nil)]),
            Record(timestampDelta: 3, offsetDelta: 2, key: Array("k2".utf8), value: nil),
            Record(timestampDelta: -2, offsetDelta: 3, key: [], value: [], headers: [RecordHeader(key: "", value: [])]),
        ]
    }

    static func sampleBatch(
        baseOffset: Int64 = 0, producerId: Int64 = -1, baseSequence: Int32 = -1, isControl: Bool = false
    ) -> ByteBuffer {
        RecordBatch.encode(
            records: sampleRecords(), baseOffset: baseOffset, baseTimestamp: 1_700_000_000_000,
            producerId: producerId, producerEpoch: producerId >= 0 ? 0 : -1, baseSequence: baseSequence,
            isControl: isControl)
    }

    /// Rewrites a batch's CRC after a test has patched bytes inside the covered range, using the
    /// reference implementation.
    static func reseal(_ buffer: inout ByteBuffer, batchAt index: Int = 0) {
        let length = Int(buffer.getInteger(at: index + 8, as: Int32.self)!)
        let covered = buffer.getBytes(at: index + 21, length: length + 12 - 21)!
        buffer.setInteger(referenceCRC32C(covered), at: index + 17)
    }
}

@Suite struct RecordBatchTests {
    @Test func roundTripPreservesRecords() throws {
        var buffer = BatchFixtures.sampleBatch(baseOffset: 100)
        let batch = try RecordBatch.decode(from: &buffer)
        #expect(buffer.readableBytes == 0)
        #expect(batch.records == BatchFixtures.sampleRecords())
        #expect(batch.header.baseOffset == 100)
        #expect(batch.offset(of: batch.records[2]) == 102)
        #expect(batch.timestamp(of: batch.records[3]) == 1_699_999_999_998)
    }

    @Test func encoderDerivesHeaderFields() throws {
        let buffer = RecordBatch.encode(
            records: BatchFixtures.sampleRecords(), baseOffset: 7, baseTimestamp: 1_000, partitionLeaderEpoch: 4,
            producerId: 99, producerEpoch: 2, baseSequence: 10, isTransactional: true)
        let header = try RecordBatchHeader(reading: buffer, at: buffer.readerIndex)
        #expect(header.totalSize == buffer.readableBytes)
        #expect(Int(header.batchLength) == buffer.readableBytes - 12)
        #expect(header.recordCount == 4)
        #expect(header.lastOffsetDelta == 3)
        #expect(header.lastOffset == 10)
        #expect(header.nextOffset == 11)
        #expect(header.baseTimestamp == 1_000)
        #expect(header.maxTimestamp == 1_005)
        #expect(header.partitionLeaderEpoch == 4)
        #expect(header.producerId == 99 && header.producerEpoch == 2 && header.baseSequence == 10)
        #expect(header.lastSequence == 13)
        #expect(header.isTransactional && !header.isControl && header.hasProducerId)
        #expect(header.compression == .none && header.timestampType == .createTime)
        #expect(header.magic == 2)
        let covered = buffer.getBytes(at: buffer.readerIndex + 21, length: buffer.readableBytes - 21)!
        #expect(header.crc == referenceCRC32C(covered))
    }

    @Test func encoderNumbersOffsetDeltasByPosition() throws {
        let records = [7, 3, 9].map { Record(offsetDelta: Int32($0), key: nil, value: [UInt8($0)]) }
        var buffer = RecordBatch.encode(records: records, baseTimestamp: 0)
        let batch = try RecordBatch.decode(from: &buffer)
        #expect(batch.records.map(\.offsetDelta) == [0, 1, 2])
        #expect(batch.records.map(\.value) == [[7], [3], [9]])
    }

    /// Bytes from kafka-python 3.0.12's DefaultRecordBatchBuilder, an implementation independent of
    /// ours: transactional, producer 4242 epoch 3 sequence 17, three records with null keys, null
    /// values and headers.
    static let kafkaPythonBatch = BatchFixtures.bytes(hex:
        "00000000000000000000005f000000000263f02c570010000000020000018bcfe568000000018bcfe568050000000000"
        + "00109200030000001100000003240000000a6b65792d300e76616c75652d300022000a02010476310404683102780468"
        + "320110000604046b320100")

    @Test func decodesABatchFromAnotherImplementation() throws {
        var buffer = ByteBuffer(bytes: Self.kafkaPythonBatch)
        let batch = try RecordBatch.decode(from: &buffer)
        let h = batch.header
        #expect(h.totalSize == 107 && h.recordCount == 3 && h.lastOffsetDelta == 2)
        #expect(h.crc == 1_676_684_375)
        #expect(h.isTransactional && !h.isControl)
        #expect(h.producerId == 4242 && h.producerEpoch == 3 && h.baseSequence == 17)
        #expect(h.baseTimestamp == 1_700_000_000_000 && h.maxTimestamp == 1_700_000_000_005)
        #expect(batch.records.map(\.key) == [Array("key-0".utf8), nil, Array("k2".utf8)])
        #expect(batch.records.map(\.value) == [Array("value-0".utf8), Array("v1".utf8), nil])
        #expect(batch.records[1].headers == [RecordHeader(key: "h1", value: [0x78]), RecordHeader(key: "h2", value: nil)])

        // Re-encoding what we decoded reproduces the other implementation's bytes exactly.
        var again = ByteBuffer()
        batch.encode(into: &again)
        #expect(Array(again.readableBytesView) == Self.kafkaPythonBatch)
    }

    /// A batch librdkafka (confluent-kafka 2.16.1) sent in a ProduceRequest v3, captured on a socket:
    /// three records, one with headers (one of them null), a null key, a null value.
    static let librdkafkaBatch = BatchFixtures.bytes(hex:
        "00000000000000000000005b0000000002ce08482e0000000000020000018bcfe568000000018bcfe56807ffffffffff"
        + "ffffffffffffffffff0000000328000000046b310a68656c6c6f0402680276026e0116000e02010a776f726c64001000"
        + "0604046b330100")

    @Test func decodesABatchFromLibrdkafka() throws {
        var buffer = ByteBuffer(bytes: Self.librdkafkaBatch)
        let batch = try RecordBatch.decode(from: &buffer)
        #expect(batch.header.crc == 3_456_649_262)
        #expect(batch.header.producerId == -1 && !batch.header.isTransactional)
        #expect(batch.header.maxTimestamp == 1_700_000_000_007)
        #expect(batch.records.map { batch.timestamp(of: $0) } == [1_700_000_000_000, 1_700_000_000_007, 1_700_000_000_003])
        #expect(batch.records[0].headers == [RecordHeader(key: "h", value: [0x76]), RecordHeader(key: "n", value: nil)])
        #expect(batch.records.map(\.key) == [Array("k1".utf8), nil, Array("k3".utf8)])
        #expect(batch.records.map(\.value) == [Array("hello".utf8), Array("world".utf8), nil])
        #expect(try RecordBatchValidator.validate(ByteBuffer(bytes: Self.librdkafkaBatch)).count == 1)

        let reencoded = RecordBatch.encode(
            records: batch.records, baseTimestamp: batch.header.baseTimestamp, partitionLeaderEpoch: 0)
        #expect(Array(reencoded.readableBytesView) == Self.librdkafkaBatch)
    }

    @Test func encodesTheSameBytesAsAnotherImplementation() {
        // kafka-python: one record, empty key, value "hello", timestamp 1234, no producer, leader epoch 0.
        let expected = BatchFixtures.bytes(hex:
            "00000000000000000000003d00000000027ac6121400000000000000000000000004d200000000000004d2ffffffff"
            + "ffffffffffffffffffff0000000116000000000a68656c6c6f00")
        let buffer = RecordBatch.encode(
            records: [Record(offsetDelta: 0, key: [], value: Array("hello".utf8))],
            baseTimestamp: 1234, partitionLeaderEpoch: 0)
        #expect(Array(buffer.readableBytesView) == expected)
    }

    @Test func controlMarkersRoundTrip() throws {
        for commit in [true, false] {
            let marker = ControlRecord.marker(commit: commit, coordinatorEpoch: 7)
            var buffer = RecordBatch.encodeMarker(
                marker, producerId: 55, producerEpoch: 9, baseOffset: 300, timestamp: 1_234)
            let batch = try RecordBatch.decode(from: &buffer)
            #expect(batch.header.isControl && batch.header.isTransactional)
            #expect(batch.header.producerId == 55 && batch.header.producerEpoch == 9)
            #expect(batch.header.baseSequence == -1)
            #expect(batch.records.count == 1)
            let record = try #require(batch.records.first)
            #expect(record.key == [0, 0, 0, commit ? 1 : 0])
            #expect(record.value == [0, 0, 0, 0, 0, 7])
            #expect(try ControlRecord(decoding: record) == marker)
            #expect(try ControlRecord.type(of: record) == (commit ? .commit : .abort))
        }
    }

    @Test func controlRecordsOfNewerVersionsAndOtherTypesStillRead() throws {
        // Version 1 key with a trailing field we do not know; type 2 (not a marker) has no epoch.
        let newer = Record(offsetDelta: 0, key: [0, 1, 0, 1, 0xAA], value: [0, 1, 0, 0, 0, 3, 0xBB])
        #expect(try ControlRecord(decoding: newer) == ControlRecord(type: .commit, coordinatorEpoch: 3))
        let other = Record(offsetDelta: 0, key: [0, 0, 0, 2], value: [1, 2, 3])
        let decoded = try ControlRecord(decoding: other)
        #expect(decoded.type == ControlRecord.ControlType(rawValue: 2) && !decoded.type.isTransactionMarker)
        #expect(throws: KafkaProtocolError.self) { try ControlRecord(decoding: Record(offsetDelta: 0, key: [0], value: nil)) }
        #expect(throws: KafkaProtocolError.self) { try ControlRecord(decoding: Record(offsetDelta: 0, key: nil, value: nil)) }
    }

    @Test func headerReadsInPlaceAndWritesBack() throws {
        var buffer = ByteBuffer(bytes: [1, 2, 3])
        var batch = BatchFixtures.sampleBatch(baseOffset: 42)
        buffer.writeBuffer(&batch)
        buffer.moveReaderIndex(forwardBy: 1)
        let header = try RecordBatchHeader(reading: buffer, at: 3)
        #expect(buffer.readerIndex == 1)
        #expect(header.baseOffset == 42)
        var written = ByteBuffer()
        header.write(into: &written)
        #expect(written.readableBytes == RecordBatchHeader.size)
        #expect(Array(written.readableBytesView) == buffer.getBytes(at: 3, length: 61))
        #expect(throws: KafkaProtocolError.self) { try RecordBatchHeader(reading: buffer, at: 0) }
        #expect(throws: KafkaProtocolError.self) { try RecordBatchHeader(reading: buffer, at: buffer.writerIndex - 60) }
    }

    @Test func headerRejectsOtherMagicAndUnknownCodecs() {
        var buffer = BatchFixtures.sampleBatch()
        buffer.setInteger(Int8(1), at: 16)
        #expect(throws: KafkaProtocolError.invalid("record batch magic 1")) { try RecordBatchHeader(reading: buffer, at: 0) }
        buffer.setInteger(Int8(2), at: 16)
        buffer.setInteger(Int16(6), at: 21)
        #expect(throws: KafkaProtocolError.invalid("compression codec 6")) { try RecordBatchHeader(reading: buffer, at: 0) }
    }

    @Test func attributeBits() {
        let a = RecordBatchHeader.attributes(
            compression: .zstd, timestampType: .logAppendTime, isTransactional: true, isControl: true,
            hasDeleteHorizon: true)
        #expect(a == 0b111_1100)
        var h = RecordBatchHeader(baseOffset: 0, batchLength: 49, lastOffsetDelta: 0, baseTimestamp: 0, maxTimestamp: 0, recordCount: 0)
        h.attributes = a
        #expect(h.compression == .zstd && h.timestampType == .logAppendTime)
        #expect(h.isTransactional && h.isControl && h.hasDeleteHorizon)
        h.attributes = 2
        #expect(h.compression == .snappy && h.timestampType == .createTime && !h.isTransactional && !h.isControl)
    }

    @Test func lastSequenceWrapsLikeKafka() {
        var h = RecordBatchHeader(
            baseOffset: 0, batchLength: 49, lastOffsetDelta: 2, baseTimestamp: 0, maxTimestamp: 0,
            producerId: 1, producerEpoch: 0, baseSequence: Int32.max - 1, recordCount: 3)
        #expect(h.lastSequence == 0)
        h.baseSequence = -1
        #expect(h.lastSequence == -1)
    }

    @Test func compressedBatchesAreRefused() {
        var buffer = BatchFixtures.sampleBatch()
        buffer.setInteger(Int16(CompressionCodec.lz4.rawValue), at: 21)
        BatchFixtures.reseal(&buffer)
        #expect(throws: KafkaProtocolError.invalid("compressed")) { try RecordBatch.decode(from: &buffer) }
        #expect(buffer.readerIndex == 0)
    }

    @Test func decodeChecksTheCRC() {
        var buffer = BatchFixtures.sampleBatch()
        let last = buffer.writerIndex - 1
        buffer.setInteger(buffer.getInteger(at: last, as: UInt8.self)! ^ 1, at: last)
        #expect(throws: KafkaProtocolError.self) { try RecordBatch.decode(from: &buffer) }
    }

    @Test func decodeRefusesTruncatedAndOverlongBatches() {
        let whole = BatchFixtures.sampleBatch()
        for cut in [0, 11, 60, 61, whole.readableBytes - 1] {
            var buffer = whole.getSlice(at: 0, length: cut)!
            #expect(throws: KafkaProtocolError.self) { try RecordBatch.decode(from: &buffer) }
        }
        // A record count one higher than the records present.
        var buffer = whole
        buffer.setInteger(Int32(5), at: 57)
        BatchFixtures.reseal(&buffer)
        #expect(throws: KafkaProtocolError.self) { try RecordBatch.decode(from: &buffer) }
    }

    @Test func recordsWhoseLengthDisagreesWithTheirFieldsAreRefused() {
        var record = ByteBuffer()
        Record(offsetDelta: 0, key: [1], value: [2]).encode(into: &record)
        var bytes = Array(record.readableBytesView)
        bytes[0] += 2  // zigzag: the length prefix claims one byte more than the fields use
        bytes.append(0)
        var long = ByteBuffer(bytes: bytes)
        #expect(throws: KafkaProtocolError.self) { try Record.decode(from: &long) }
        var nullHeaderKey = ByteBuffer()
        nullHeaderKey.writeBytes([0x10, 0, 0, 0, 1, 1, 2, 1, 1, 0])  // header key length -1
        #expect(throws: KafkaProtocolError.self) { try Record.decode(from: &nullHeaderKey) }
    }

    @Test(arguments: [0, 1, 63, 64, 127, 128, 8191, 8192, 70_000])
    func encodedSizeMatchesWrittenBytes(_ n: Int) throws {
        let record = Record(
            timestampDelta: Int64(n) * 1_000_003, offsetDelta: Int32(n), key: [UInt8](repeating: 1, count: n),
            value: n % 2 == 0 ? nil : [UInt8](repeating: 2, count: n / 3),
            headers: [RecordHeader(key: String(repeating: "h", count: n % 300), value: [UInt8](repeating: 3, count: n % 70))])
        var buffer = ByteBuffer()
        record.encode(into: &buffer)
        #expect(buffer.readableBytes == record.encodedSize)
        #expect(try Record.decode(from: &buffer) == record)
        #expect(buffer.readableBytes == 0)
    }

    @Test func rewritesOutsideTheCRCKeepTheBatchValid() throws {
        var buffer = BatchFixtures.sampleBatch()
        RecordBatch.setBaseOffset(9_000, in: &buffer, at: 0)
        RecordBatch.setPartitionLeaderEpoch(12, in: &buffer, at: 0)
        var copy = buffer
        let batch = try RecordBatch.decode(from: &copy)
        #expect(batch.header.baseOffset == 9_000 && batch.header.partitionLeaderEpoch == 12)
        #expect(batch.header.lastOffset == 9_003)
    }

    @Test func logAppendTimeRestampsAndReseals() throws {
        var buffer = BatchFixtures.sampleBatch()
        RecordBatch.setLogAppendTime(1_800_000_000_000, in: &buffer, at: 0)
        let batch = try RecordBatch.decode(from: &buffer)
        #expect(batch.header.timestampType == .logAppendTime)
        #expect(batch.header.maxTimestamp == 1_800_000_000_000)
        #expect(batch.records.allSatisfy { batch.timestamp(of: $0) == 1_800_000_000_000 })
    }

    @Test func decodeAllReadsConsecutiveBatches() throws {
        var set = BatchFixtures.sampleBatch(baseOffset: 0)
        var second = RecordBatch.encodeMarker(
            .marker(commit: true, coordinatorEpoch: 1), producerId: 3, producerEpoch: 0, baseOffset: 4, timestamp: 5)
        set.writeBuffer(&second)
        let batches = try RecordBatch.decodeAll(from: set)
        #expect(batches.map(\.header.baseOffset) == [0, 4])
        #expect(batches.map(\.records.count) == [4, 1])
    }
}
