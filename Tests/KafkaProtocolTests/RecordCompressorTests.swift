import KafkaProtocol
import Testing

@Suite("Record compression in the framings Kafka's Java producer writes")
struct RecordCompressorTests {
    /// Three sizes: empty, inside one block, and across several xerial (32 KiB) and LZ4 (64 KiB) blocks.
    static let inputs: [[UInt8]] = [
        [],
        Array("one small record section".utf8),
        (0..<200_000).map { UInt8(truncatingIfNeeded: $0 * 7 / 3) },
    ]

    @Test(arguments: CompressionCodec.allCases)
    func everyCodecRoundTrips(_ codec: CompressionCodec) throws {
        for input in Self.inputs {
            let compressed = try input.withUnsafeBytes { try RecordCompressor.compress(codec, $0) }
            let inflated = compressed.withUnsafeBytes { RecordDecompressor.decompress(codec, $0, limit: 1 << 20) }
            #expect(try inflated.get() == input, "\(codec), \(input.count) bytes")
        }
    }

    @Test func snappyIsXerialFramedInBlocksOf32KiB() throws {
        let input = Self.inputs[2]
        let compressed = try input.withUnsafeBytes { try RecordCompressor.compress(.snappy, $0) }
        #expect(Array(compressed.prefix(16)) == [0x82, 0x53, 0x4E, 0x41, 0x50, 0x50, 0x59, 0x00, 0, 0, 0, 1, 0, 0, 0, 1])
        var blocks = 0
        var position = 16
        while position < compressed.count {
            let length = compressed[position..<(position + 4)].reduce(0) { $0 << 8 | Int($1) }
            position += 4 + length
            blocks += 1
        }
        #expect(position == compressed.count, "the length-prefixed blocks end where the stream does")
        #expect(blocks == (input.count + 32 * 1024 - 1) / (32 * 1024))
    }

    /// Kafka's KafkaLZ4BlockInputStream reads only independent blocks, so the frame descriptor
    /// must say so, with no content size or dictionary for it to trip over.
    @Test func lz4IsOneFrameOfIndependent64KiBBlocks() throws {
        let compressed = try Self.inputs[1].withUnsafeBytes { try RecordCompressor.compress(.lz4, $0) }
        #expect(Array(compressed.prefix(4)) == [0x04, 0x22, 0x4D, 0x18], "the LZ4 frame magic, little-endian")
        let flags = compressed[4], blockDescriptor = compressed[5]
        #expect(flags >> 6 == 0b01, "frame version 1")
        #expect(flags & 0b0010_0000 != 0, "block independence")
        #expect(flags & 0b0001_1001 == 0, "no block checksum, no content size, no dictionary")
        #expect(blockDescriptor >> 4 & 0b111 == 4, "64 KiB maximum block size")
    }

    @Test func zstdAndGzipWriteTheirStandardHeaders() throws {
        let input = Self.inputs[1]
        let zstd = try input.withUnsafeBytes { try RecordCompressor.compress(.zstd, $0) }
        #expect(Array(zstd.prefix(4)) == [0x28, 0xB5, 0x2F, 0xFD])
        let gzip = try input.withUnsafeBytes { try RecordCompressor.compress(.gzip, $0) }
        #expect(Array(gzip.prefix(3)) == [0x1F, 0x8B, 0x08])
    }

    @Test func codecNamesAreKafkas() {
        #expect(CompressionCodec.allCases.map(\.name) == ["none", "gzip", "snappy", "lz4", "zstd"])
        #expect(CompressionCodec(name: "zstd") == .zstd)
        #expect(CompressionCodec(name: "brotli") == nil)
    }
}
