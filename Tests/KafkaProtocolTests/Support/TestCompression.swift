import CLZ4
import CSnappy
import CZlib
import CZstd
import KafkaProtocol
import NIOCore

/// Compressors for building the batches the validator must accept or refuse; the broker itself
/// only ever decompresses.
enum TestCompression {
    /// The framings a test can compress with: snappy twice, raw (librdkafka) and xerial (Java).
    enum Framing: String, CaseIterable, CustomStringConvertible {
        case gzip, snappyRaw, snappyXerial, lz4, zstd
        var codec: CompressionCodec {
            switch self {
            case .gzip: .gzip
            case .snappyRaw, .snappyXerial: .snappy
            case .lz4: .lz4
            case .zstd: .zstd
            }
        }
        var description: String { rawValue }
    }

    static func compress(_ input: [UInt8], _ framing: Framing) -> [UInt8] {
        switch framing {
        case .gzip: return gzip(input)
        case .snappyRaw: return snappy(input)
        case .snappyXerial:
            // Header (magic, version 1, compatible version 1), then length-prefixed blocks.
            var out: [UInt8] = [0x82, 0x53, 0x4E, 0x41, 0x50, 0x50, 0x59, 0x00, 0, 0, 0, 1, 0, 0, 0, 1]
            var position = 0
            repeat {
                let block = snappy(Array(input[position..<min(input.count, position + 32 * 1024)]))
                withUnsafeBytes(of: UInt32(block.count).bigEndian) { out.append(contentsOf: $0) }
                out.append(contentsOf: block)
                position += 32 * 1024
            } while position < input.count
            return out
        case .lz4:
            var out = [UInt8](repeating: 0, count: LZ4F_compressFrameBound(input.count, nil))
            let size = out.withUnsafeMutableBytes { o in
                input.withUnsafeBytes { i in LZ4F_compressFrame(o.baseAddress, o.count, i.baseAddress, i.count, nil) }
            }
            precondition(LZ4F_isError(size) == 0)
            return Array(out[..<size])
        case .zstd:
            var out = [UInt8](repeating: 0, count: ZSTD_compressBound(input.count))
            let size = out.withUnsafeMutableBytes { o in
                input.withUnsafeBytes { i in ZSTD_compress(o.baseAddress, o.count, i.baseAddress, i.count, 3) }
            }
            precondition(ZSTD_isError(size) == 0)
            return Array(out[..<size])
        }
    }

    private static func snappy(_ input: [UInt8]) -> [UInt8] {
        var length = snappy_max_compressed_length(input.count)
        var out = [UInt8](repeating: 0, count: length)
        let status = out.withUnsafeMutableBytes { o in
            input.withUnsafeBytes { i in
                snappy_compress(
                    i.baseAddress!.assumingMemoryBound(to: CChar.self), i.count,
                    o.baseAddress!.assumingMemoryBound(to: CChar.self), &length)
            }
        }
        precondition(status == SNAPPY_OK)
        return Array(out[..<length])
    }

    private static func gzip(_ input: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        precondition(once_gzip_deflate_init(&stream, Z_DEFAULT_COMPRESSION) == Z_OK)
        defer { deflateEnd(&stream) }
        var out = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(input.count))) + 64)
        var source = input
        let produced = source.withUnsafeMutableBufferPointer { i in
            out.withUnsafeMutableBufferPointer { o -> Int in
                stream.next_in = i.baseAddress
                stream.avail_in = UInt32(i.count)
                stream.next_out = o.baseAddress
                stream.avail_out = UInt32(o.count)
                precondition(deflate(&stream, Z_FINISH) == Z_STREAM_END)
                return o.count - Int(stream.avail_out)
            }
        }
        return Array(out[..<produced])
    }
}

extension BatchFixtures {
    /// A batch whose header says `codec` (or none) and `recordCount`, around `section` as given,
    /// with a correct CRC: the shape of a poison batch that passes the checksum.
    static func batch(
        section: [UInt8], recordCount: Int32, codec: CompressionCodec = .none, lastOffsetDelta: Int32? = nil
    ) -> ByteBuffer {
        let header = RecordBatchHeader(
            baseOffset: 0,
            batchLength: Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead + section.count),
            attributes: RecordBatchHeader.attributes(compression: codec),
            lastOffsetDelta: lastOffsetDelta ?? recordCount - 1,
            baseTimestamp: 1_700_000_000_000,
            maxTimestamp: 1_700_000_000_000,
            recordCount: recordCount)
        var buffer = ByteBuffer()
        header.write(into: &buffer)
        buffer.writeBytes(section)
        reseal(&buffer)
        return buffer
    }

    /// The records section (everything after the 61-byte header) of `records` encoded as a batch.
    static func section(_ records: [Record]) -> [UInt8] {
        let whole = RecordBatch.encode(records: records, baseTimestamp: 1_700_000_000_000)
        return Array(whole.readableBytesView.dropFirst(RecordBatchHeader.size))
    }

    static func compressed(_ records: [Record], _ framing: TestCompression.Framing) -> ByteBuffer {
        batch(
            section: TestCompression.compress(section(records), framing), recordCount: Int32(records.count),
            codec: framing.codec)
    }
}
