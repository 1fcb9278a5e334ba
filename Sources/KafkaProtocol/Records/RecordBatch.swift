import NIOCore

/// A decoded RecordBatch v2. The broker keeps batches as bytes and reads only headers; this type is
/// for clients, tests and the few broker paths that need the records themselves (control markers).
public struct RecordBatch: Sendable, Hashable {
    public var header: RecordBatchHeader
    public var records: [Record]

    public init(header: RecordBatchHeader, records: [Record]) {
        self.header = header
        self.records = records
    }

    /// The absolute offset of a record of this batch.
    public func offset(of record: Record) -> Int64 {
        header.baseOffset + Int64(record.offsetDelta)
    }

    /// A record's timestamp: its own under CreateTime, the batch's append time under LogAppendTime.
    public func timestamp(of record: Record) -> Int64 {
        header.timestampType == .logAppendTime ? header.maxTimestamp : header.baseTimestamp + record.timestampDelta
    }
}

// MARK: Decoding

extension RecordBatch {
    /// Reads one whole batch from the reader index and moves past it. Checks the CRC, because a client
    /// decoding fetched data is the last place corruption can be caught. Compressed batches throw
    /// `KafkaProtocolError.invalid("compressed")`.
    public static func decode(from buffer: inout ByteBuffer) throws -> RecordBatch {
        let start = buffer.readerIndex
        let header = try RecordBatchHeader(reading: buffer, at: start)
        guard header.batchLength >= RecordBatchHeader.minimumBatchLength else {
            throw KafkaProtocolError.invalid("record batch length \(header.batchLength)")
        }
        guard var batch = buffer.getSlice(at: start, length: header.totalSize) else {
            throw KafkaProtocolError.truncated("record batch")
        }
        let computed = batch.withUnsafeReadableBytes {
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[RecordBatchHeader.attributesOffset...]))
        }
        guard computed == header.crc else {
            throw KafkaProtocolError.invalid("record batch CRC \(header.crc), computed \(computed)")
        }
        guard header.compression == .none else { throw KafkaProtocolError.invalid("compressed") }
        batch.moveReaderIndex(forwardBy: RecordBatchHeader.size)
        // Every record takes at least seven bytes; refuse counts the bytes cannot hold before allocating.
        guard header.recordCount >= 0, Int(header.recordCount) <= batch.readableBytes / 7 else {
            throw KafkaProtocolError.invalid("record count \(header.recordCount)")
        }
        var records: [Record] = []
        records.reserveCapacity(Int(header.recordCount))
        for _ in 0..<header.recordCount {
            records.append(try Record.decode(from: &batch))
        }
        guard batch.readableBytes == 0 else {
            throw KafkaProtocolError.invalid("record batch has \(batch.readableBytes) bytes past its records")
        }
        buffer.moveReaderIndex(forwardBy: header.totalSize)
        return RecordBatch(header: header, records: records)
    }

    /// Decodes every batch in a record set, such as a Fetch partition's records.
    public static func decodeAll(from buffer: ByteBuffer) throws -> [RecordBatch] {
        var buffer = buffer
        var batches: [RecordBatch] = []
        while buffer.readableBytes > 0 {
            batches.append(try decode(from: &buffer))
        }
        return batches
    }
}

// MARK: Encoding

extension RecordBatch {
    /// Writes the batch. `batchLength`, `recordCount` and `crc` are computed from what is written, so
    /// the header's copies of them are ignored; every other header field is written as it stands.
    public func encode(into buffer: inout ByteBuffer) {
        precondition(header.compression == .none, "compressed encoding is not implemented")
        let start = buffer.writerIndex
        var h = header
        h.recordCount = Int32(records.count)
        h.crc = 0
        h.batchLength = 0
        h.write(into: &buffer)
        for record in records {
            record.encode(into: &buffer)
        }
        let length = buffer.writerIndex - start - RecordBatchHeader.logOverhead
        buffer.setInteger(Int32(length), at: start + RecordBatchHeader.batchLengthOffset, endianness: .big)
        let crc = Self.computeCRC(of: buffer, batchAt: start)
        buffer.setInteger(crc, at: start + RecordBatchHeader.crcOffset, endianness: .big)
    }

    /// Builds a batch the way a producer does: offset deltas 0, 1, 2… in order, lastOffsetDelta and
    /// maxTimestamp derived from the records, and a fresh CRC. Each record's `offsetDelta` is replaced
    /// by its position.
    public static func encode(
        records: [Record],
        baseOffset: Int64 = 0,
        baseTimestamp: Int64,
        partitionLeaderEpoch: Int32 = -1,
        producerId: Int64 = -1,
        producerEpoch: Int16 = -1,
        baseSequence: Int32 = -1,
        isTransactional: Bool = false,
        isControl: Bool = false,
        timestampType: TimestampType = .createTime
    ) -> ByteBuffer {
        var numbered = records
        for i in numbered.indices {
            numbered[i].offsetDelta = Int32(i)
        }
        let maxDelta = numbered.map(\.timestampDelta).max() ?? 0
        let header = RecordBatchHeader(
            baseOffset: baseOffset,
            batchLength: 0,
            partitionLeaderEpoch: partitionLeaderEpoch,
            attributes: RecordBatchHeader.attributes(
                timestampType: timestampType, isTransactional: isTransactional, isControl: isControl),
            lastOffsetDelta: Int32(max(numbered.count - 1, 0)),
            baseTimestamp: baseTimestamp,
            maxTimestamp: baseTimestamp + maxDelta,
            producerId: producerId,
            producerEpoch: producerEpoch,
            baseSequence: baseSequence,
            recordCount: Int32(numbered.count)
        )
        let batch = RecordBatch(header: header, records: numbered)
        var buffer = ByteBufferAllocator().buffer(
            capacity: RecordBatchHeader.size + numbered.reduce(0) { $0 + $1.encodedSize })
        batch.encode(into: &buffer)
        return buffer
    }

    /// The CRC-32C a batch's bytes should carry: everything from `attributes` to the end, with
    /// `batchLength` taken from the bytes.
    static func computeCRC(of buffer: ByteBuffer, batchAt index: Int) -> UInt32 {
        let length = Int(buffer.getInteger(at: index + RecordBatchHeader.batchLengthOffset, endianness: .big, as: Int32.self)!)
        let covered = length + RecordBatchHeader.logOverhead - RecordBatchHeader.attributesOffset
        return buffer.withUnsafeReadableBytes {
            let from = index - buffer.readerIndex + RecordBatchHeader.attributesOffset
            return CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[from..<(from + covered)]))
        }
    }
}

// MARK: Rewriting stored batches

extension RecordBatch {
    /// Assigns the batch's offsets on append. The CRC starts after `baseOffset`, so it stays valid.
    public static func setBaseOffset(_ offset: Int64, in buffer: inout ByteBuffer, at index: Int) {
        buffer.setInteger(offset, at: index, endianness: .big)
    }

    /// Stamps the leader epoch on append; like `baseOffset`, outside the CRC.
    public static func setPartitionLeaderEpoch(_ epoch: Int32, in buffer: inout ByteBuffer, at index: Int) {
        buffer.setInteger(epoch, at: index + RecordBatchHeader.partitionLeaderEpochOffset, endianness: .big)
    }

    /// Turns a batch into a LogAppendTime batch stamped `timestamp`, for topics configured that way.
    /// Attributes and maxTimestamp are inside the CRC, so it is recomputed: one pass over the batch.
    public static func setLogAppendTime(_ timestamp: Int64, in buffer: inout ByteBuffer, at index: Int) {
        let attributesIndex = index + RecordBatchHeader.attributesOffset
        let attributes = buffer.getInteger(at: attributesIndex, endianness: .big, as: Int16.self)!
        buffer.setInteger(attributes | RecordBatchHeader.timestampTypeBit, at: attributesIndex, endianness: .big)
        buffer.setInteger(timestamp, at: index + RecordBatchHeader.maxTimestampOffset, endianness: .big)
        let crc = computeCRC(of: buffer, batchAt: index)
        buffer.setInteger(crc, at: index + RecordBatchHeader.crcOffset, endianness: .big)
    }
}
