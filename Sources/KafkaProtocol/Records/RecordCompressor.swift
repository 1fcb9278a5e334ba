import CLZ4
import CSnappy
import CZlib
import CZstd

/// Compresses a batch's records section the way Kafka's Java producer does, so that every Kafka
/// reader takes it: gzip with gzip framing; snappy in xerial framing (librdkafka reads raw and
/// xerial, Java's reader wants xerial); lz4 as an LZ4 frame of independent 64 KiB blocks with no
/// content size (Kafka's KafkaLZ4BlockInputStream reads no linked blocks); zstd as one frame at
/// Kafka's default level 3.
public enum RecordCompressor {
    public struct Failure: Error, Hashable, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// `.none` returns the input unchanged. Throws `Failure` only if a codec library refuses.
    public static func compress(_ codec: CompressionCodec, _ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        switch codec {
        case .none: return Array(input)
        case .gzip: return try gzip(input)
        case .snappy: return try snappyXerial(input)
        case .lz4: return try lz4(input)
        case .zstd: return try zstd(input)
        }
    }

    /// Fills a buffer of `capacity` bytes and keeps the `written` bytes the codec reports.
    private static func output(
        capacity: Int, _ fill: (UnsafeMutableRawBufferPointer) throws -> Int
    ) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: max(1, capacity))
        let written = try out.withUnsafeMutableBytes { try fill($0) }
        out.removeSubrange(written...)
        return out
    }

    private static func gzip(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        var stream = z_stream()
        guard once_gzip_deflate_init(&stream, Z_DEFAULT_COMPRESSION) == Z_OK else { throw Failure(description: "zlib could not start") }
        defer { deflateEnd(&stream) }
        let bound = Int(deflateBound(&stream, uLong(input.count)))
        return try output(capacity: bound) { (target) throws -> Int in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress?.assumingMemoryBound(to: UInt8.self))
            stream.avail_in = uInt(input.count)
            stream.next_out = target.baseAddress?.assumingMemoryBound(to: UInt8.self)
            stream.avail_out = uInt(target.count)
            guard deflate(&stream, Z_FINISH) == Z_STREAM_END else { throw Failure(description: "zlib deflate did not finish") }
            return target.count - Int(stream.avail_out)
        }
    }

    /// snappy-java's stream header: magic, then version 1 and compatible version 1.
    static let xerialHeader: [UInt8] = [0x82, 0x53, 0x4E, 0x41, 0x50, 0x50, 0x59, 0x00, 0, 0, 0, 1, 0, 0, 0, 1]
    /// snappy-java's default block size, which Kafka's producer uses.
    static let xerialBlockSize = 32 * 1024

    private static func snappyXerial(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        // One block holding snappy's encoding of nothing: a zero length.
        guard input.count > 0 else { return xerialHeader + [0, 0, 0, 1, 0] }
        let blocks = max(1, (input.count + xerialBlockSize - 1) / xerialBlockSize)
        var out = xerialHeader
        out.reserveCapacity(xerialHeader.count + blocks * (4 + snappy_max_compressed_length(xerialBlockSize)))
        var position = 0
        repeat {
            let block = UnsafeRawBufferPointer(rebasing: input[position..<min(input.count, position + xerialBlockSize)])
            let compressed = try output(capacity: snappy_max_compressed_length(block.count)) { (target) throws -> Int in
                var length = target.count
                let status = snappy_compress(
                    block.baseAddress!.assumingMemoryBound(to: CChar.self), block.count,
                    target.baseAddress!.assumingMemoryBound(to: CChar.self), &length)
                guard status == SNAPPY_OK else { throw Failure(description: "snappy status \(status.rawValue)") }
                return length
            }
            withUnsafeBytes(of: UInt32(compressed.count).bigEndian) { out.append(contentsOf: $0) }
            out.append(contentsOf: compressed)
            position += xerialBlockSize
        } while position < input.count
        return out
    }

    private static func lz4(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        var preferences = LZ4F_preferences_t()
        preferences.frameInfo.blockSizeID = LZ4F_max64KB
        preferences.frameInfo.blockMode = LZ4F_blockIndependent
        return try output(capacity: LZ4F_compressFrameBound(input.count, &preferences)) { (target) throws -> Int in
            let size = LZ4F_compressFrame(target.baseAddress, target.count, input.baseAddress, input.count, &preferences)
            guard LZ4F_isError(size) == 0 else { throw Failure(description: "lz4: \(String(cString: LZ4F_getErrorName(size)))") }
            return size
        }
    }

    /// Kafka's `compression.zstd.level` default.
    static let zstdLevel: Int32 = 3

    private static func zstd(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        try output(capacity: ZSTD_compressBound(input.count)) { (target) throws -> Int in
            let size = ZSTD_compress(target.baseAddress, target.count, input.baseAddress, input.count, zstdLevel)
            guard ZSTD_isError(size) == 0 else { throw Failure(description: "zstd: \(String(cString: ZSTD_getErrorName(size)))") }
            return size
        }
    }
}
