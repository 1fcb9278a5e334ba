import NIOCore

/// Checks record sets batch by batch, reading headers and checksumming bytes in place. A produced
/// batch also has every record walked (in place when uncompressed, after inflating otherwise), as
/// Kafka does on append; log recovery checks only headers and CRCs, which is all a torn tail needs.
public enum RecordBatchValidator {
    /// Validates a Produce partition's record set and returns the header of each batch, in order.
    ///
    /// - Parameters:
    ///   - allowMultipleBatches: Kafka refuses more than one batch per partition from produce v3 on;
    ///     pass true for older request versions or for sets that do not come from a producer.
    ///   - maxBatchSize: the topic's max.message.bytes; a larger batch is MESSAGE_TOO_LARGE.
    ///   - requireKeys: the topic is compacted, so a record without a key is INVALID_RECORD.
    ///   - maxUncompressedBytes: how far a compressed batch may inflate before it is refused.
    public static func validate(
        _ records: ByteBuffer,
        allowMultipleBatches: Bool = false,
        maxBatchSize: Int = .max,
        requireKeys: Bool = false,
        maxUncompressedBytes: Int = 100 * 1024 * 1024
    ) throws(RecordValidationError) -> [RecordBatchHeader] {
        let result = records.withUnsafeReadableBytes { bytes -> Result<[RecordBatchHeader], RecordValidationError> in
            var headers: [RecordBatchHeader] = []
            var position = 0
            while position < bytes.count {
                if !headers.isEmpty && !allowMultipleBatches { return .failure(.multipleBatches) }
                let header: RecordBatchHeader
                switch checkBatch(bytes, at: position) {
                case .success(let h): header = h
                case .failure(let error): return .failure(error)
                }
                if let error = producedBatchError(header, at: position, maxBatchSize: maxBatchSize) {
                    return .failure(error)
                }
                let batch = UnsafeRawBufferPointer(rebasing: bytes[position..<(position + header.totalSize)])
                if let error = recordsError(
                    batch, header: header, at: position, requireKeys: requireKeys, maxUncompressedBytes: maxUncompressedBytes)
                {
                    return .failure(error)
                }
                headers.append(header)
                position += header.totalSize
            }
            return headers.isEmpty ? .failure(.noBatches) : .success(headers)
        }
        return try result.get()
    }

    /// The longest prefix of whole, intact v2 batches, as log recovery keeps after a crash: it stops at
    /// the first batch that is cut short, has a nonsensical length or magic, or fails its CRC.
    public static func scanValidPrefix(_ buffer: ByteBuffer) -> (validBytes: Int, headers: [RecordBatchHeader]) {
        buffer.withUnsafeReadableBytes { bytes in
            var headers: [RecordBatchHeader] = []
            var position = 0
            while position < bytes.count, case .success(let header) = checkBatch(bytes, at: position) {
                headers.append(header)
                position += header.totalSize
            }
            return (position, headers)
        }
    }

    /// The checks that hold for any stored batch: complete, sane length, magic 2, CRC.
    static func checkBatch(_ bytes: UnsafeRawBufferPointer, at position: Int) -> Result<RecordBatchHeader, RecordValidationError> {
        let remaining = bytes.count - position
        guard remaining >= RecordBatchHeader.logOverhead else { return .failure(.truncatedBatch(position: position)) }
        let length = Int32(bigEndian: bytes.loadUnaligned(
            fromByteOffset: position + RecordBatchHeader.batchLengthOffset, as: Int32.self))
        // The magic byte sits at the same place in every message format, so a length that fits the
        // smallest legacy (v0) message is enough to name an old format as such rather than as corrupt.
        let legacyMinimum: Int32 = 14
        guard length >= legacyMinimum else {
            return .failure(.invalidBatchLength(position: position, length: length))
        }
        guard Int(length) <= remaining - RecordBatchHeader.logOverhead else {
            return .failure(.truncatedBatch(position: position))
        }
        let magic = Int8(bitPattern: bytes[position + RecordBatchHeader.magicOffset])
        guard magic == RecordBatchHeader.currentMagic else {
            return .failure(.unsupportedMagic(position: position, magic: magic))
        }
        guard length >= RecordBatchHeader.minimumBatchLength else {
            return .failure(.invalidBatchLength(position: position, length: length))
        }
        let header = RecordBatchHeader(unchecked: bytes, at: position)
        let coveredStart = position + RecordBatchHeader.attributesOffset
        let computed = CRC32C.checksum(UnsafeRawBufferPointer(
            rebasing: bytes[coveredStart..<(position + header.totalSize)]))
        guard computed == header.crc else {
            return .failure(.crcMismatch(position: position, stored: header.crc, computed: computed))
        }
        return .success(header)
    }

    /// Walks the records of one batch (`batch` spans exactly its bytes), inflating them first if
    /// the batch is compressed.
    static func recordsError(
        _ batch: UnsafeRawBufferPointer, header: RecordBatchHeader, at position: Int,
        requireKeys: Bool, maxUncompressedBytes: Int
    ) -> RecordValidationError? {
        let section = UnsafeRawBufferPointer(rebasing: batch[RecordBatchHeader.size...])
        let problem: RecordSectionChecker.Problem?
        let codec = header.compression
        if codec == .none {
            problem = RecordSectionChecker.check(section, count: header.recordCount, requireKeys: requireKeys)
        } else {
            switch RecordDecompressor.decompress(codec, section, limit: maxUncompressedBytes) {
            case .success(let inflated):
                problem = inflated.withUnsafeBytes {
                    RecordSectionChecker.check($0, count: header.recordCount, requireKeys: requireKeys)
                }
            case .failure(.corrupt(let reason)):
                return .corruptCompression(position: position, codec: codec, reason: reason)
            case .failure(.truncated(let reason)):
                return .truncatedCompression(position: position, codec: codec, reason: reason)
            case .failure(.tooLarge(let limit)):
                return .uncompressedTooLarge(position: position, limit: limit)
            }
        }
        switch problem {
        case nil: return nil
        case .malformed(let index, let reason): return .malformedRecord(position: position, index: index, reason: reason)
        case .keyless(let indexes): return .keylessRecordsOnCompactedTopic(position: position, indexes: indexes)
        }
    }

    /// The checks Kafka makes of a batch that a client produced, on top of `checkBatch`.
    static func producedBatchError(_ header: RecordBatchHeader, at position: Int, maxBatchSize: Int) -> RecordValidationError? {
        if header.totalSize > maxBatchSize {
            return .batchTooLarge(position: position, size: header.totalSize, limit: maxBatchSize)
        }
        let codec = header.attributes & RecordBatchHeader.compressionMask
        if CompressionCodec(rawValue: codec) == nil {
            return .unknownCompression(position: position, codec: codec)
        }
        if header.isControl {
            return .controlBatchFromClient(position: position)
        }
        if header.recordCount <= 0 || Int64(header.recordCount) - 1 != Int64(header.lastOffsetDelta) {
            return .invalidRecordCount(
                position: position, recordCount: header.recordCount, lastOffsetDelta: header.lastOffsetDelta)
        }
        if header.hasProducerId && header.baseSequence < 0 {
            return .missingSequence(position: position, producerId: header.producerId)
        }
        return nil
    }
}
