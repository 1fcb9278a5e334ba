import CZlib
import KafkaProtocol
import NIOCore

/// The record-section codecs this client speaks: none and gzip (zlib, gzip framing, as Kafka's
/// Java client writes it). Snappy, LZ4 and zstd batches are refused with a clear error.
enum RecordCompression {
    static func compress(_ records: ByteBuffer, codec: CompressionCodec) throws -> ByteBuffer {
        switch codec {
        case .none: return records
        case .gzip: return try gzip(records)
        default:
            throw KafkaClientError(.unsupportedFeature, "\(codec) compression is not supported by this client")
        }
    }

    static func decompress(_ records: ByteBuffer, codec: CompressionCodec) throws -> ByteBuffer {
        switch codec {
        case .none: return records
        case .gzip: return try gunzip(records)
        default:
            throw KafkaClientError(.unsupportedFeature, "\(codec)-compressed batches are not supported by this client")
        }
    }

    static func gzip(_ input: ByteBuffer) throws -> ByteBuffer {
        var stream = z_stream()
        guard once_gzip_deflate_init(&stream, Z_DEFAULT_COMPRESSION) == Z_OK else {
            throw KafkaClientError(.unsupportedFeature, "zlib deflateInit failed")
        }
        defer { deflateEnd(&stream) }
        var bytes = Array(input.readableBytesView)
        let bound = Int(deflateBound(&stream, uLong(bytes.count)))
        var out = [UInt8](repeating: 0, count: bound)
        let written: Int = try bytes.withUnsafeMutableBufferPointer { source in
            try out.withUnsafeMutableBufferPointer { target in
                stream.next_in = source.baseAddress
                stream.avail_in = uInt(source.count)
                stream.next_out = target.baseAddress
                stream.avail_out = uInt(target.count)
                guard deflate(&stream, Z_FINISH) == Z_STREAM_END else {
                    throw KafkaClientError(.unsupportedFeature, "zlib deflate did not finish")
                }
                return target.count - Int(stream.avail_out)
            }
        }
        return ByteBuffer(bytes: out[..<written])
    }

    static func gunzip(_ input: ByteBuffer) throws -> ByteBuffer {
        var stream = z_stream()
        guard once_gzip_inflate_init(&stream) == Z_OK else {
            throw KafkaClientError(.malformedResponse, "zlib inflateInit failed")
        }
        defer { inflateEnd(&stream) }
        var bytes = Array(input.readableBytesView)
        var result = ByteBuffer()
        var chunk = [UInt8](repeating: 0, count: max(64 * 1024, bytes.count * 4))
        try bytes.withUnsafeMutableBufferPointer { source in
            stream.next_in = source.baseAddress
            stream.avail_in = uInt(source.count)
            while true {
                let (status, produced) = chunk.withUnsafeMutableBufferPointer { target -> (Int32, Int) in
                    stream.next_out = target.baseAddress
                    stream.avail_out = uInt(target.count)
                    let status = inflate(&stream, Z_NO_FLUSH)
                    return (status, target.count - Int(stream.avail_out))
                }
                result.writeBytes(chunk[..<produced])
                if status == Z_STREAM_END { return }
                guard status == Z_OK, produced > 0 || stream.avail_in > 0 else {
                    throw KafkaClientError(.malformedResponse, "corrupt gzip record data (zlib status \(status))")
                }
            }
        }
        return result
    }
}
