import KafkaProtocol
import NIOCore

/// The client's side of Kafka's four record codecs: KafkaProtocol does the compressing (in the
/// framings Java's producer writes) and the bounded inflating; this maps their failures to the
/// client's errors.
enum RecordCompression {
    static func compress(_ records: ByteBuffer, codec: CompressionCodec) throws -> ByteBuffer {
        guard codec != .none else { return records }
        do {
            return ByteBuffer(bytes: try records.withUnsafeReadableBytes { try RecordCompressor.compress(codec, $0) })
        } catch {
            throw KafkaClientError(.unsupportedFeature, "\(codec) compression failed: \(error)")
        }
    }

    /// - Parameter limit: the most bytes the records may inflate to; a batch past it is an error
    ///   rather than an allocation the broker's bytes decide.
    static func decompress(_ records: ByteBuffer, codec: CompressionCodec, limit: Int) throws -> ByteBuffer {
        guard codec != .none else { return records }
        let result = records.withUnsafeReadableBytes { RecordDecompressor.decompress(codec, $0, limit: limit) }
        switch result {
        case .success(let bytes):
            return ByteBuffer(bytes: bytes)
        case .failure(.corrupt(let reason)), .failure(.truncated(let reason)):
            throw KafkaClientError(.malformedResponse, "corrupt \(codec) record data: \(reason)")
        case .failure(.tooLarge(let limit)):
            throw KafkaClientError(.malformedResponse, "a \(codec) batch inflates past \(limit) bytes (maxUncompressedBatchBytes)")
        }
    }
}
