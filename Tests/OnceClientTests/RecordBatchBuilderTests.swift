import KafkaProtocol
import NIOCore
import Testing

@testable import OnceClient

@Suite struct RecordBatchBuilderTests {
    private func builder(_ values: [(key: String?, value: String, timestamp: Int64)]) -> RecordBatchBuilder {
        var builder = RecordBatchBuilder()
        for v in values {
            builder.append(key: v.key.map { Array($0.utf8) }, value: Array(v.value.utf8), timestamp: v.timestamp)
        }
        return builder
    }

    @Test func aBuiltBatchDecodesWithItsRecordsInOrder() throws {
        let built = try builder([("k1", "a", 1000), (nil, "b", 1005), ("k3", "c", 999)]).build()
        var buffer = built
        let batch = try RecordBatch.decode(from: &buffer)
        #expect(buffer.readableBytes == 0)
        #expect(batch.records.map { $0.value.map { String(decoding: $0, as: UTF8.self) } } == ["a", "b", "c"])
        #expect(batch.records.map { batch.offset(of: $0) } == [0, 1, 2])
        #expect(batch.records.map { batch.timestamp(of: $0) } == [1000, 1005, 999])
        #expect(batch.header.baseTimestamp == 1000)
        #expect(batch.header.maxTimestamp == 1005)
        #expect(batch.header.producerId == -1)
        #expect(batch.header.baseSequence == -1)
        #expect(batch.records[1].key == nil)
    }

    @Test func theStampIsWrittenAndTheCRCStillHolds() throws {
        let b = builder([("k", "v", 1), ("k", "w", 2)])
        let stamp = RecordBatchBuilder.ProducerStamp(producerId: 42, producerEpoch: 3, baseSequence: 17, isTransactional: true)
        var buffer = try b.build(stamp: stamp)
        let batch = try RecordBatch.decode(from: &buffer)  // checks the CRC
        #expect(batch.header.producerId == 42)
        #expect(batch.header.producerEpoch == 3)
        #expect(batch.header.baseSequence == 17)
        #expect(batch.header.lastSequence == 18)
        #expect(batch.header.isTransactional)
        #expect(!batch.header.isControl)
    }

    @Test func restampingForARetryChangesOnlyTheIdentity() throws {
        let b = builder([(nil, "x", 5)])
        let first = try b.build(stamp: .init(producerId: 1, producerEpoch: 0, baseSequence: 0, isTransactional: false))
        let second = try b.build(stamp: .init(producerId: 1, producerEpoch: 1, baseSequence: 0, isTransactional: false))
        #expect(first.readableBytes == second.readableBytes)
        #expect(first.getSlice(at: 61, length: first.readableBytes - 61) == second.getSlice(at: 61, length: second.readableBytes - 61))
        #expect(first != second)
    }

    @Test func sizeTracksTheEncodedBytes() throws {
        let b = builder([("key", String(repeating: "v", count: 100), 7), (nil, "", 7)])
        #expect(try b.build().readableBytes == b.sizeInBytes)
        #expect(b.recordCount == 2)
        #expect(RecordBatchBuilder.estimatedSize(key: nil, value: Array(repeating: 0, count: 100), headers: []) > 100)
    }

    @Test(arguments: [
        (Int64(0), Int32(0), nil, [UInt8]?.none),
        (Int64(-5), Int32(1), [UInt8](), [UInt8]()),
        (Int64(1_000_000_000_000), Int32.max, [UInt8]("key".utf8), [UInt8](repeating: 7, count: 300)),
        (Int64(63), Int32(64), nil, [UInt8](repeating: 1, count: 20_000)),
    ])
    func theFastEncodingMatchesRecordEncode(delta: Int64, offset: Int32, key: [UInt8]?, value: [UInt8]?) {
        var fast = ByteBuffer()
        RecordBatchBuilder.encodeWithoutHeaders(timestampDelta: delta, offsetDelta: offset, key: key, value: value, into: &fast)
        var reference = ByteBuffer()
        Record(timestampDelta: delta, offsetDelta: offset, key: key, value: value).encode(into: &reference)
        #expect(fast == reference)
    }

}

@Suite struct RecordCompressionTests {
    private func repetitive(_ count: Int) -> RecordBatchBuilder {
        var builder = RecordBatchBuilder()
        for i in 0..<count {
            builder.append(key: nil, value: Array("value-\(i)-".utf8) + Array(repeating: 0x61, count: 50), timestamp: 10)
        }
        return builder
    }

    private func fetched(_ records: ByteBuffer) -> FetchedPartition {
        FetchedPartition(
            topicPartition: TopicPartition("t", 0), highWatermark: 2000, lastStableOffset: 2000, logStartOffset: 0,
            records: records)
    }

    /// 2000 records of 60-odd bytes: past one xerial block (32 KiB) and one LZ4 block (64 KiB),
    /// so the multi-block framings are what is read back.
    @Test(arguments: CompressionCodec.allCases.filter { $0 != .none })
    func aCompressedBatchReadsBackThroughTheRecordSetReader(_ codec: CompressionCodec) throws {
        let builder = repetitive(2000)
        let plain = try builder.build()
        let compressed = try builder.build(compression: codec)
        #expect(compressed.readableBytes < plain.readableBytes / 4, "repetitive values compress")
        let header = try RecordBatchHeader(reading: compressed, at: compressed.readerIndex)
        #expect(header.compression == codec)
        let read = try RecordSetReader(isolation: .readUncommitted).read(fetched(compressed), from: 0)
        #expect(read.records.count == 2000)
        #expect(read.records[1999].value.map { String(decoding: $0.prefix(11), as: UTF8.self) } == "value-1999-")
        #expect(read.nextOffset == 2000)
    }

    @Test(arguments: CompressionCodec.allCases.filter { $0 != .none })
    func aBatchInflatingPastTheLimitIsAnError(_ codec: CompressionCodec) throws {
        let compressed = try repetitive(200).build(compression: codec)
        #expect {
            try RecordSetReader(isolation: .readUncommitted, maxUncompressedBatchBytes: 1000).read(fetched(compressed), from: 0)
        } throws: { error in
            (error as? KafkaClientError)?.description.contains("inflates past 1000 bytes") == true
        }
    }

    @Test func corruptGzipDataIsAnError() {
        let garbage = ByteBuffer(bytes: [0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef])
        #expect(throws: KafkaClientError.self) { try RecordCompression.decompress(garbage, codec: .gzip, limit: 1 << 20) }
    }
}
