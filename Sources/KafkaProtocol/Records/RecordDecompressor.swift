import CLZ4
import CSnappy
import CZlib
import CZstd
import Synchronization

/// Inflates the records section of a compressed batch so that every record can be checked on
/// append, as Kafka's broker does. Output is bounded: a small batch cannot make the broker allocate
/// without limit (a decompression bomb), whatever its codec header claims.
public enum RecordDecompressor {
    public enum Failure: Error, Hashable, Sendable {
        /// The codec rejected the bytes.
        case corrupt(String)
        /// The compressed stream stops before its end: Kafka's reader calls this a premature EOF.
        case truncated(String)
        /// The records would inflate past `limit` bytes.
        case tooLarge(limit: Int)
    }

    /// Decompresses `input` (the bytes after a batch's 61-byte header) with `codec`, producing at
    /// most `limit` bytes. `.none` is not a codec to call this with.
    public static func decompress(
        _ codec: CompressionCodec, _ input: UnsafeRawBufferPointer, limit: Int
    ) -> Result<[UInt8], Failure> {
        switch codec {
        case .none: return .success(Array(input))
        case .gzip: return gunzip(input, limit: limit)
        case .snappy: return unsnappy(input, limit: limit)
        case .lz4: return unlz4(input, limit: limit)
        case .zstd: return unzstd(input, limit: limit)
        }
    }

    /// A growable output that refuses to pass `limit`. It starts at the size the stream declares,
    /// when it declares one, so the usual batch inflates with no regrowth; a declared size is
    /// only a hint, capped so that a lying header cannot make a tiny batch allocate `limit`.
    private struct Output {
        var bytes: [UInt8]
        var filled = 0
        let limit: Int

        init(declared: Int?, inputSize: Int, limit: Int) {
            self.limit = limit
            let guess = declared.map { min($0, inputSize.multipliedReportingOverflow(by: 256).partialValue) }
            let size = max(1, min(limit, max(guess ?? inputSize * 4, 4096)))
            bytes = [UInt8](unsafeUninitializedCapacity: size) { _, count in count = size }
        }

        var spare: Int { bytes.count - filled }

        /// Makes room for more output, or reports that the limit is reached.
        mutating func grow() -> Bool {
            guard bytes.count < limit else { return false }
            let size = min(limit, bytes.count * 2)
            bytes.append(contentsOf: repeatElement(0, count: size - bytes.count))
            return true
        }

        consuming func finish() -> [UInt8] {
            bytes.removeSubrange(filled...)
            return bytes
        }
    }

    // MARK: gzip

    private static func gunzip(_ input: UnsafeRawBufferPointer, limit: Int) -> Result<[UInt8], Failure> {
        guard input.count > 0 else { return .failure(.truncated("empty gzip stream")) }
        var stream = z_stream()
        guard once_gzip_inflate_init(&stream) == Z_OK else { return .failure(.corrupt("zlib could not start")) }
        defer { inflateEnd(&stream) }
        // A gzip member ends with its uncompressed size modulo 2^32.
        let declared = input.count >= 18
            ? Int(UInt32(littleEndian: input.loadUnaligned(fromByteOffset: input.count - 4, as: UInt32.self))) : nil
        var out = Output(declared: declared, inputSize: input.count, limit: limit)
        let base = input.baseAddress!.assumingMemoryBound(to: UInt8.self)
        stream.next_in = UnsafeMutablePointer(mutating: base)
        stream.avail_in = UInt32(input.count)
        while true {
            if out.spare == 0 && !out.grow() { return .failure(.tooLarge(limit: limit)) }
            let filled = out.filled
            let spare = out.spare
            let status = out.bytes.withUnsafeMutableBufferPointer { buffer -> Int32 in
                stream.next_out = buffer.baseAddress! + filled
                stream.avail_out = UInt32(spare)
                return inflate(&stream, Z_NO_FLUSH)
            }
            out.filled = filled + spare - Int(stream.avail_out)
            switch status {
            case Z_STREAM_END:
                // Java's GZIPInputStream reads concatenated members; so does this.
                guard stream.avail_in > 0 else { return .success(out.finish()) }
                guard inflateReset(&stream) == Z_OK else { return .failure(.corrupt("zlib could not restart")) }
            case Z_OK:
                continue
            case Z_BUF_ERROR:
                // No progress possible: either output space (grown above) or input ran out.
                if stream.avail_in == 0 { return .failure(.truncated("gzip stream ends early")) }
            default:
                let reason = stream.msg.map { String(cString: $0) } ?? "zlib status \(status)"
                return .failure(.corrupt("gzip: \(reason)"))
            }
        }
    }

    // MARK: snappy

    /// The header of the xerial framing that Kafka's Java client writes; librdkafka writes raw
    /// snappy. Kafka reads both, so the broker does too.
    private static let xerialMagic: [UInt8] = [0x82, 0x53, 0x4E, 0x41, 0x50, 0x50, 0x59, 0x00]
    private static let xerialHeaderSize = 16

    private static func unsnappy(_ input: UnsafeRawBufferPointer, limit: Int) -> Result<[UInt8], Failure> {
        guard input.count >= xerialHeaderSize, input.prefix(xerialMagic.count).elementsEqual(xerialMagic) else {
            var out: [UInt8] = []
            return snappyBlock(input, into: &out, limit: limit).map { out }
        }
        var out: [UInt8] = []
        var position = xerialHeaderSize
        while position < input.count {
            guard input.count - position >= 4 else { return .failure(.truncated("xerial snappy block length")) }
            let length = Int(UInt32(bigEndian: input.loadUnaligned(fromByteOffset: position, as: UInt32.self)))
            position += 4
            guard length <= input.count - position else { return .failure(.truncated("xerial snappy block")) }
            let block = UnsafeRawBufferPointer(rebasing: input[position..<(position + length)])
            if case .failure(let failure) = snappyBlock(block, into: &out, limit: limit) { return .failure(failure) }
            position += length
        }
        return .success(out)
    }

    private static func snappyBlock(_ block: UnsafeRawBufferPointer, into out: inout [UInt8], limit: Int) -> Result<Void, Failure> {
        guard let base = block.baseAddress?.assumingMemoryBound(to: CChar.self), block.count > 0 else {
            return .failure(.truncated("empty snappy block"))
        }
        var length = 0
        guard snappy_uncompressed_length(base, block.count, &length) == SNAPPY_OK else {
            return .failure(.corrupt("snappy: unreadable block length"))
        }
        guard length <= limit - out.count else { return .failure(.tooLarge(limit: limit)) }
        let start = out.count
        out.append(contentsOf: repeatElement(0, count: length))
        var produced = length
        let status = out.withUnsafeMutableBufferPointer { buffer in
            buffer.baseAddress!.advanced(by: start).withMemoryRebound(to: CChar.self, capacity: length) {
                snappy_uncompress(base, block.count, $0, &produced)
            }
        }
        guard status == SNAPPY_OK, produced == length else { return .failure(.corrupt("snappy: invalid block")) }
        return .success(())
    }

    // MARK: lz4

    private static func unlz4(_ input: UnsafeRawBufferPointer, limit: Int) -> Result<[UInt8], Failure> {
        var context: OpaquePointer?
        guard LZ4F_isError(LZ4F_createDecompressionContext(&context, UInt32(LZ4F_VERSION))) == 0, let context else {
            return .failure(.corrupt("lz4 could not start"))
        }
        defer { _ = LZ4F_freeDecompressionContext(context) }
        // The frame header may carry the content size (librdkafka leaves it out; others set it).
        var info = LZ4F_frameInfo_t()
        var consumed = input.count
        let header = LZ4F_getFrameInfo(context, &info, input.baseAddress, &consumed)
        if LZ4F_isError(header) != 0 {
            if input.count < 7 { return .failure(.truncated("lz4 frame header is cut short")) }
            return .failure(.corrupt("lz4: \(String(cString: LZ4F_getErrorName(header)))"))
        }
        let declared = info.contentSize > 0 && info.contentSize < UInt64(Int.max) ? Int(info.contentSize) : nil
        var out = Output(declared: declared, inputSize: input.count, limit: limit)
        while true {
            if out.spare == 0 && !out.grow() { return .failure(.tooLarge(limit: limit)) }
            var sourceSize = input.count - consumed
            var destinationSize = out.spare
            let filled = out.filled
            let hint = out.bytes.withUnsafeMutableBufferPointer { buffer in
                LZ4F_decompress(
                    context, buffer.baseAddress! + filled, &destinationSize,
                    input.baseAddress.map { $0 + consumed }, &sourceSize, nil)
            }
            if LZ4F_isError(hint) != 0 {
                return .failure(.corrupt("lz4: \(String(cString: LZ4F_getErrorName(hint)))"))
            }
            consumed += sourceSize
            out.filled += destinationSize
            // A hint of 0 means the frame is complete.
            if hint == 0 { return .success(out.finish()) }
            if consumed == input.count && destinationSize == 0 && out.spare > 0 {
                return .failure(.truncated("lz4 frame ends early"))
            }
        }
    }

    // MARK: zstd

    /// A zstd decoder keeps a window buffer of up to several MiB; allocating (and page-faulting)
    /// one per batch cost more than inflating the batch, so decoders are kept and reused.
    private struct ZstdContext: @unchecked Sendable {
        let pointer: OpaquePointer
    }

    private static let zstdContexts = Mutex<[ZstdContext]>([])
    /// Enough for every event-loop thread of a large machine; more are freed, not kept.
    private static let keptZstdContexts = 64

    private static func releaseZstd(_ context: OpaquePointer) {
        // A reset session forgets the last frame, so the next batch starts clean.
        let kept = ZSTD_isError(ZSTD_DCtx_reset(context, ZSTD_reset_session_only)) == 0
            && zstdContexts.withLock { pool in
                guard pool.count < keptZstdContexts else { return false }
                pool.append(ZstdContext(pointer: context))
                return true
            }
        if !kept { ZSTD_freeDCtx(context) }
    }

    private static func unzstd(_ input: UnsafeRawBufferPointer, limit: Int) -> Result<[UInt8], Failure> {
        guard let context = zstdContexts.withLock({ $0.popLast()?.pointer }) ?? ZSTD_createDCtx() else {
            return .failure(.corrupt("zstd could not start"))
        }
        defer { releaseZstd(context) }
        let size = ZSTD_getFrameContentSize(input.baseAddress, input.count)
        // Larger values are ZSTD_CONTENTSIZE_UNKNOWN and ZSTD_CONTENTSIZE_ERROR.
        let declared = size < UInt64(Int.max) ? Int(size) : nil
        var out = Output(declared: declared, inputSize: input.count, limit: limit)
        var source = ZSTD_inBuffer(src: input.baseAddress, size: input.count, pos: 0)
        var remainingHint = 1
        while true {
            if out.spare == 0 && !out.grow() { return .failure(.tooLarge(limit: limit)) }
            let filled = out.filled
            let capacity = out.bytes.count
            let (hint, produced) = out.bytes.withUnsafeMutableBufferPointer { buffer -> (Int, Int) in
                var destination = ZSTD_outBuffer(dst: buffer.baseAddress, size: capacity, pos: filled)
                let hint = ZSTD_decompressStream(context, &destination, &source)
                return (hint, destination.pos)
            }
            if ZSTD_isError(hint) != 0 {
                return .failure(.corrupt("zstd: \(String(cString: ZSTD_getErrorName(hint)))"))
            }
            let progressed = produced > filled
            out.filled = produced
            remainingHint = hint
            // 0: every frame so far is complete; stop once the input is used up too.
            if remainingHint == 0 && source.pos == source.size { return .success(out.finish()) }
            if source.pos == source.size && !progressed && out.spare > 0 {
                return .failure(.truncated("zstd frame ends early"))
            }
        }
    }
}
