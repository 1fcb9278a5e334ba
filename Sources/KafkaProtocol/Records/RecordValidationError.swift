/// Why a produced record set was refused. Each case maps to the partition error code a Kafka broker
/// answers with, so clients react to it as they would against Kafka. `position` is the byte offset
/// of the offending batch within the partition's record set.
public enum RecordValidationError: Error, Hashable, Sendable {
    /// The record set holds no batch at all.
    case noBatches
    /// Produce v3+ allows exactly one batch per partition.
    case multipleBatches
    /// The record set ends inside a batch.
    case truncatedBatch(position: Int)
    /// A batchLength shorter than a header with no records.
    case invalidBatchLength(position: Int, length: Int32)
    /// A batch in a message format other than v2.
    case unsupportedMagic(position: Int, magic: Int8)
    case crcMismatch(position: Int, stored: UInt32, computed: UInt32)
    /// A compression id that names no codec (5-7).
    case unknownCompression(position: Int, codec: Int16)
    /// The record count and lastOffsetDelta disagree, or the batch claims no records.
    case invalidRecordCount(position: Int, recordCount: Int32, lastOffsetDelta: Int32)
    /// Control batches (transaction markers) are written by the broker only.
    case controlBatchFromClient(position: Int)
    /// A batch from an idempotent producer (producerId set) without a base sequence.
    case missingSequence(position: Int, producerId: Int64)
    case batchTooLarge(position: Int, size: Int, limit: Int)
    /// Record `index` of the batch cannot be parsed, or the records do not match the declared count.
    case malformedRecord(position: Int, index: Int, reason: String)
    /// Records without a key on a topic whose cleanup.policy includes compact.
    case keylessRecordsOnCompactedTopic(position: Int, indexes: [Int])
    /// The codec rejects the compressed records.
    case corruptCompression(position: Int, codec: CompressionCodec, reason: String)
    /// The compressed records stop before their stream ends.
    case truncatedCompression(position: Int, codec: CompressionCodec, reason: String)
    /// The compressed records inflate past the broker's bound.
    case uncompressedTooLarge(position: Int, limit: Int)

    /// The Kafka error code for the partition's ProduceResponse.
    public var kafkaErrorCode: Int16 {
        switch self {
        case .truncatedBatch, .invalidBatchLength, .crcMismatch, .unknownCompression:
            return 2  // CORRUPT_MESSAGE
        case .corruptCompression:
            // Kafka's codec streams throw a bare KafkaException here, which reaches the client as
            // UNKNOWN_SERVER_ERROR; the bytes are corrupt, and CORRUPT_MESSAGE says so.
            return 2  // CORRUPT_MESSAGE
        case .malformedRecord, .keylessRecordsOnCompactedTopic, .truncatedCompression:
            // DefaultRecord.readFrom and the batch iterator throw InvalidRecordException.
            return 87  // INVALID_RECORD
        case .batchTooLarge, .uncompressedTooLarge:
            return 10  // MESSAGE_TOO_LARGE
        case .noBatches, .multipleBatches, .unsupportedMagic, .invalidRecordCount, .controlBatchFromClient,
            .missingSequence:
            // Kafka answers an old magic in produce v3+ with INVALID_RECORD too, not
            // UNSUPPORTED_FOR_MESSAGE_FORMAT (which it keeps for down-conversion on fetch).
            return 87  // INVALID_RECORD
        }
    }

    public var errorCode: ErrorCode { ErrorCode(kafkaErrorCode) }

    /// KIP-467's per-record errors (ProduceResponse v8+): which records of the batch were refused.
    public var recordErrors: [(index: Int32, message: String)] {
        switch self {
        case .malformedRecord(_, let index, let reason):
            return [(Int32(clamping: index), reason)]
        case .keylessRecordsOnCompactedTopic(_, let indexes):
            return indexes.map { (Int32(clamping: $0), "compacted topic cannot accept a record without a key") }
        default:
            return []
        }
    }
}

extension RecordValidationError: CustomStringConvertible {
    /// The sentence a client sees as the partition's errorMessage.
    public var description: String {
        switch self {
        case .noBatches: return "the record set holds no batch"
        case .multipleBatches: return "produce v3 and later carry exactly one batch per partition"
        case .truncatedBatch(let at): return "the batch at byte \(at) is cut short"
        case .invalidBatchLength(let at, let length): return "the batch at byte \(at) has an invalid length \(length)"
        case .unsupportedMagic(let at, let magic): return "the batch at byte \(at) has magic \(magic); only v2 batches are accepted"
        case .crcMismatch(let at, let stored, let computed):
            return "the batch at byte \(at) fails its CRC (stored \(stored), computed \(computed))"
        case .unknownCompression(let at, let codec): return "the batch at byte \(at) names no known codec (\(codec))"
        case .invalidRecordCount(let at, let count, let delta):
            return "the batch at byte \(at) declares \(count) records but a last offset delta of \(delta)"
        case .controlBatchFromClient(let at): return "the batch at byte \(at) is a control batch; only the broker writes those"
        case .missingSequence(let at, let producerId):
            return "the batch at byte \(at) has producer id \(producerId) but no base sequence"
        case .batchTooLarge(let at, let size, let limit):
            return "the batch at byte \(at) is \(size) bytes, more than max.message.bytes \(limit)"
        case .malformedRecord(let at, let index, let reason): return "record \(index) of the batch at byte \(at): \(reason)"
        case .keylessRecordsOnCompactedTopic(_, let indexes):
            return "\(indexes.count) records without a key; a compacted topic needs a key on every record"
        case .corruptCompression(let at, let codec, let reason): return "the \(codec) records of the batch at byte \(at) are corrupt: \(reason)"
        case .truncatedCompression(let at, let codec, let reason):
            return "the \(codec) records of the batch at byte \(at) end early: \(reason)"
        case .uncompressedTooLarge(let at, let limit):
            return "the compressed records of the batch at byte \(at) inflate past \(limit) bytes"
        }
    }
}
