import KafkaProtocol
import NIOCore
import Testing

/// Batches whose CRC is right but whose records are not, in every shape and inside every codec:
/// each must be refused with the code Kafka gives, naming the record where it can.
@Suite struct RecordSectionValidationTests {
    private func rejection(
        _ buffer: ByteBuffer, requireKeys: Bool = false, limit: Int = 1 << 20
    ) -> RecordValidationError? {
        do {
            _ = try RecordBatchValidator.validate(buffer, requireKeys: requireKeys, maxUncompressedBytes: limit)
            return nil
        } catch {
            return error
        }
    }

    /// Zigzag varint, as records encode lengths and counts.
    static func varint(_ value: Int64) -> [UInt8] {
        var v = UInt64(bitPattern: (value << 1) ^ (value >> 63))
        var out: [UInt8] = []
        while v >= 0x80 {
            out.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
        return out
    }

    /// A length-prefixed record around `body`.
    static func record(_ body: [UInt8]) -> [UInt8] { varint(Int64(body.count)) + body }

    /// A record body with a one-byte key and value and the given header bytes after the count.
    static func body(offsetDelta: Int64 = 0, headerCount: Int64 = 0, headers: [UInt8] = []) -> [UInt8] {
        [0] + varint(0) + varint(offsetDelta) + varint(1) + [0x6B] + varint(1) + [0x76] + varint(headerCount) + headers
    }

    static let good = BatchFixtures.section(BatchFixtures.sampleRecords())

    static func expectMalformed(
        _ error: RecordValidationError?, index: Int, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        guard case .malformedRecord(0, let at, _) = error else {
            Issue.record("expected a malformed record, got \(String(describing: error))", sourceLocation: sourceLocation)
            return
        }
        #expect(at == index, sourceLocation: sourceLocation)
        #expect(error?.kafkaErrorCode == 87, sourceLocation: sourceLocation)
        #expect(error?.recordErrors.map(\.index) == [Int32(index)], sourceLocation: sourceLocation)
    }

    @Test func wellFormedRecordsPass() {
        #expect(rejection(BatchFixtures.batch(section: Self.good, recordCount: 4)) == nil)
    }

    @Test func truncatedLastRecord() {
        let cut = Array(Self.good.dropLast(3))
        Self.expectMalformed(rejection(BatchFixtures.batch(section: cut, recordCount: 4)), index: 3)
    }

    @Test func recordLengthVarintThatOverflows() {
        let first = Self.record(Self.body())
        let section = first + [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01] + Array(repeating: 0, count: 16)
        Self.expectMalformed(rejection(BatchFixtures.batch(section: section, recordCount: 2)), index: 1)
    }

    @Test func moreRecordsDeclaredThanPresent() {
        Self.expectMalformed(rejection(BatchFixtures.batch(section: Self.good, recordCount: 5)), index: 4)
    }

    @Test func fewerRecordsDeclaredThanPresent() {
        Self.expectMalformed(rejection(BatchFixtures.batch(section: Self.good, recordCount: 3)), index: 2)
    }

    @Test func negativeRecordLength() {
        let section = Self.varint(-3) + Self.body()
        Self.expectMalformed(rejection(BatchFixtures.batch(section: section, recordCount: 1)), index: 0)
    }

    @Test func recordLengthPastTheEnd() {
        let body = Self.body()
        let section = Self.varint(Int64(body.count + 10)) + body
        Self.expectMalformed(rejection(BatchFixtures.batch(section: section, recordCount: 1)), index: 0)
    }

    @Test func bytesLeftInsideARecord() {
        let section = Self.record(Self.body() + [0])
        Self.expectMalformed(rejection(BatchFixtures.batch(section: section, recordCount: 1)), index: 0)
    }

    @Test func negativeHeaderCount() {
        let section = Self.record(Self.body()) + Self.record(Self.body(offsetDelta: 1, headerCount: -1))
        Self.expectMalformed(rejection(BatchFixtures.batch(section: section, recordCount: 2)), index: 1)
    }

    @Test func headerCountLargerThanTheRecord() {
        let section = Self.record(Self.body(headerCount: 100, headers: Self.varint(1) + [0x68] + Self.varint(-1)))
        Self.expectMalformed(rejection(BatchFixtures.batch(section: section, recordCount: 1)), index: 0)
    }

    @Test func negativeHeaderKeyLength() {
        let section = Self.record(Self.body(headerCount: 1, headers: Self.varint(-1) + Self.varint(-1)))
        Self.expectMalformed(rejection(BatchFixtures.batch(section: section, recordCount: 1)), index: 0)
    }

    @Test func valueRunningPastItsRecord() {
        let body: [UInt8] = [0] + Self.varint(0) + Self.varint(0) + Self.varint(-1) + Self.varint(40) + [1, 2]
        Self.expectMalformed(rejection(BatchFixtures.batch(section: Self.record(body), recordCount: 1)), index: 0)
    }

    @Test func negativeKeyLengthReadsAsNullAsKafkaDoes() {
        // DefaultRecord.readFrom treats any negative length as null, so Kafka stores this record.
        let body: [UInt8] = [0] + Self.varint(0) + Self.varint(0) + Self.varint(-7) + Self.varint(-1) + Self.varint(0)
        let batch = BatchFixtures.batch(section: Self.record(body), recordCount: 1)
        #expect(rejection(batch) == nil)
        #expect(rejection(batch, requireKeys: true) == .keylessRecordsOnCompactedTopic(position: 0, indexes: [0]))
    }

    @Test func keylessRecordsOnACompactedTopic() {
        // The sample's second record has no key.
        let batch = BatchFixtures.sampleBatch()
        #expect(rejection(batch) == nil)
        let error = rejection(batch, requireKeys: true)
        #expect(error == .keylessRecordsOnCompactedTopic(position: 0, indexes: [1]))
        #expect(error?.kafkaErrorCode == 87)
        #expect(error?.recordErrors.map(\.index) == [1])
    }

    @Test(arguments: TestCompression.Framing.allCases)
    func compressedRecordsPass(_ framing: TestCompression.Framing) throws {
        let batch = BatchFixtures.compressed(BatchFixtures.sampleRecords(), framing)
        #expect(rejection(batch) == nil)
        #expect(try RecordBatchValidator.validate(batch).map(\.compression) == [framing.codec])
    }

    @Test(arguments: TestCompression.Framing.allCases)
    func compressedRecordsAreCheckedAfterInflating(_ framing: TestCompression.Framing) {
        let poison = Array(Self.good.dropLast(3))
        let batch = BatchFixtures.batch(
            section: TestCompression.compress(poison, framing), recordCount: 4, codec: framing.codec)
        Self.expectMalformed(rejection(batch), index: 3)
        let keyless = BatchFixtures.compressed(BatchFixtures.sampleRecords(), framing)
        #expect(rejection(keyless, requireKeys: true) == .keylessRecordsOnCompactedTopic(position: 0, indexes: [1]))
    }

    @Test(arguments: [CompressionCodec.gzip, .snappy, .lz4, .zstd])
    func bytesTheCodecRejectsAreCorrupt(_ codec: CompressionCodec) {
        // A small first byte keeps snappy's length prefix plausible, so its decoder is what fails.
        let garbage: [UInt8] = [0x05] + Array(repeating: 0xFF, count: 40)
        let error = rejection(BatchFixtures.batch(section: garbage, recordCount: 1, codec: codec))
        guard case .corruptCompression(0, codec, _) = error else {
            Issue.record("\(codec): expected corrupt compression, got \(String(describing: error))")
            return
        }
        #expect(error?.kafkaErrorCode == 2)
    }

    @Test(arguments: [TestCompression.Framing.gzip, .lz4, .zstd, .snappyXerial])
    func aCutCompressedStreamIsInvalidRecord(_ framing: TestCompression.Framing) {
        let whole = TestCompression.compress(Self.good, framing)
        let cut = Array(whole.prefix(whole.count - 6))
        let error = rejection(BatchFixtures.batch(section: cut, recordCount: 4, codec: framing.codec))
        guard case .truncatedCompression(0, framing.codec, _) = error else {
            Issue.record("\(framing): expected a truncated stream, got \(String(describing: error))")
            return
        }
        #expect(error?.kafkaErrorCode == 87)
    }

    @Test(arguments: TestCompression.Framing.allCases)
    func inflatingPastTheLimitIsMessageTooLarge(_ framing: TestCompression.Framing) {
        let zeros = [UInt8](repeating: 0, count: 4 << 20)
        let batch = BatchFixtures.batch(
            section: TestCompression.compress(zeros, framing), recordCount: 1, codec: framing.codec)
        #expect(rejection(batch, limit: 1 << 20) == .uncompressedTooLarge(position: 0, limit: 1 << 20))
        #expect(rejection(batch, limit: 1 << 20)?.kafkaErrorCode == 10)
    }
}
