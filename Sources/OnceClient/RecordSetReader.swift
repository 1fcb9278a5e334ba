import KafkaProtocol
import NIOCore

/// Turns a fetched partition's record bytes into the records a consumer may see.
///
/// Under read_committed it applies Kafka's client-side rule for aborted transactions: the fetch
/// response lists each aborted transaction's producer id and first offset; a transactional batch
/// of such a producer at or after that offset is dropped until the producer's abort marker.
/// Control batches never reach the caller. A batch cut short at the end of the bytes (the fetch
/// size limit) is left for the next fetch.
public struct RecordSetReader: Sendable {
    public var isolation: IsolationLevel
    /// The most bytes one compressed batch may inflate to: a broker's few bytes must not decide how
    /// much this process allocates. Default: 256 MiB, past any batch a Kafka producer sends.
    public var maxUncompressedBatchBytes: Int

    public static let defaultMaxUncompressedBatchBytes = 256 * 1024 * 1024

    public init(isolation: IsolationLevel, maxUncompressedBatchBytes: Int = Self.defaultMaxUncompressedBatchBytes) {
        self.isolation = isolation
        self.maxUncompressedBatchBytes = maxUncompressedBatchBytes
    }

    /// Decodes one batch, inflating its records first when it is compressed with any of Kafka's
    /// codecs (RecordBatch.decode itself handles only uncompressed batches).
    func decodeBatch(from buffer: inout ByteBuffer, header: RecordBatchHeader) throws -> RecordBatch {
        guard header.compression != .none else { return try RecordBatch.decode(from: &buffer) }
        guard var whole = buffer.readSlice(length: header.totalSize) else {
            throw KafkaProtocolError.truncated("record batch")
        }
        let computed = whole.withUnsafeReadableBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[21...])) }
        guard computed == header.crc else {
            throw KafkaProtocolError.invalid("record batch CRC \(header.crc), computed \(computed)")
        }
        whole.moveReaderIndex(forwardBy: RecordBatchHeader.size)
        var records = try RecordCompression.decompress(whole, codec: header.compression, limit: maxUncompressedBatchBytes)
        var decoded: [Record] = []
        decoded.reserveCapacity(Int(max(0, min(header.recordCount, 1_000_000))))
        for _ in 0..<max(0, header.recordCount) {
            decoded.append(try Record.decode(from: &records))
        }
        return RecordBatch(header: header, records: decoded)
    }

    public func read(_ fetched: FetchedPartition, from fetchOffset: Int64) throws -> FetchedRecords {
        var buffer = fetched.records
        var pendingAborts = fetched.abortedTransactions.sorted { $0.firstOffset < $1.firstOffset }[...]
        var abortedProducers: Set<Int64> = []
        var records: [ConsumerRecord] = []
        var nextOffset = fetchOffset

        while buffer.readableBytes >= RecordBatchHeader.logOverhead {
            guard let length = buffer.getInteger(at: buffer.readerIndex + 8, endianness: .big, as: Int32.self),
                length >= 0, buffer.readableBytes >= RecordBatchHeader.logOverhead + Int(length)
            else { break }
            let header = try RecordBatchHeader(reading: buffer, at: buffer.readerIndex)
            let batch = try decodeBatch(from: &buffer, header: header)
            nextOffset = max(nextOffset, header.nextOffset)

            if isolation == .readCommitted, header.hasProducerId {
                while let first = pendingAborts.first, first.firstOffset <= header.lastOffset {
                    abortedProducers.insert(first.producerId)
                    pendingAborts.removeFirst()
                }
                if header.isControl {
                    if let marker = batch.records.first, try ControlRecord.type(of: marker) == .abort {
                        abortedProducers.remove(header.producerId)
                    }
                    continue
                }
                if header.isTransactional, abortedProducers.contains(header.producerId) {
                    continue
                }
            }
            if header.isControl { continue }

            for record in batch.records {
                let offset = batch.offset(of: record)
                guard offset >= fetchOffset else { continue }
                records.append(
                    ConsumerRecord(
                        topicPartition: fetched.topicPartition, offset: offset, timestamp: batch.timestamp(of: record),
                        key: record.key, value: record.value, headers: record.headers))
            }
        }
        return FetchedRecords(records: records, nextOffset: nextOffset)
    }
}
