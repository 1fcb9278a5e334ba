import KafkaProtocol
import NIOCore

/// Accumulates records for one partition into the body of a v2 record batch.
///
/// Records are encoded as they arrive, so closing a batch costs one header and one CRC. The
/// producer id, epoch and sequence live in the header and are stamped only at send time, because
/// an epoch bump re-numbers batches that are already built.
public struct RecordBatchBuilder: Sendable {
    public private(set) var recordCount: Int32 = 0
    private(set) var body: ByteBuffer
    private var baseTimestamp: Int64 = 0
    private var maxTimestampDelta: Int64 = 0

    public init(capacity: Int = 1024) {
        body = ByteBufferAllocator().buffer(capacity: capacity)
    }

    /// Bytes the whole batch would take if closed now, header included.
    public var sizeInBytes: Int { RecordBatchHeader.size + body.readableBytes }

    /// Bytes `record` would add to the batch.
    public static func estimatedSize(key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader]) -> Int {
        Record(timestampDelta: 0, offsetDelta: 0, key: key, value: value, headers: headers).encodedSize + 12
    }

    /// Appends a record; the first record's timestamp becomes the batch's base timestamp.
    public mutating func append(key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader] = [], timestamp: Int64) {
        if recordCount == 0 { baseTimestamp = timestamp }
        let delta = timestamp - baseTimestamp
        maxTimestampDelta = max(maxTimestampDelta, delta)
        if headers.isEmpty {
            Self.encodeWithoutHeaders(timestampDelta: delta, offsetDelta: recordCount, key: key, value: value, into: &body)
        } else {
            Record(timestampDelta: delta, offsetDelta: recordCount, key: key, value: value, headers: headers)
                .encode(into: &body)
        }
        recordCount += 1
    }

    /// The same bytes as `Record.encode`, written through one raw pointer. `ByteBuffer` checks
    /// exclusive access on every write, and a record is a dozen small writes, which made
    /// encoding the largest cost of producing small records.
    static func encodeWithoutHeaders(
        timestampDelta: Int64, offsetDelta: Int32, key: [UInt8]?, value: [UInt8]?, into buffer: inout ByteBuffer
    ) {
        let timestampDeltaBits = zigzag(timestampDelta)
        let offsetDeltaBits = zigzag(Int64(offsetDelta))
        let keyLengthBits = zigzag(Int64(key?.count ?? -1))
        let valueLengthBits = zigzag(Int64(value?.count ?? -1))
        // attributes, the deltas, key and value with their lengths, and a zero header count.
        let bodySize = 1 + varintSize(timestampDeltaBits) + varintSize(offsetDeltaBits)
            + varintSize(keyLengthBits) + (key?.count ?? 0) + varintSize(valueLengthBits) + (value?.count ?? 0) + 1
        let bodySizeBits = zigzag(Int64(bodySize))
        let total = varintSize(bodySizeBits) + bodySize
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: total) { raw in
            var at = 0
            func put(_ bits: UInt64) {
                var v = bits
                while v >= 0x80 {
                    raw[at] = UInt8(truncatingIfNeeded: v) | 0x80
                    at += 1
                    v >>= 7
                }
                raw[at] = UInt8(v)
                at += 1
            }
            func put(_ bytes: [UInt8]?) {
                guard let bytes, !bytes.isEmpty else { return }
                bytes.withUnsafeBytes { source in
                    (raw.baseAddress! + at).copyMemory(from: source.baseAddress!, byteCount: source.count)
                }
                at += bytes.count
            }
            put(bodySizeBits)
            raw[at] = 0
            at += 1
            put(timestampDeltaBits)
            put(offsetDeltaBits)
            put(keyLengthBits)
            put(key)
            put(valueLengthBits)
            put(value)
            put(0)
            precondition(at == total, "record size mismatch")
            return total
        }
    }

    private static func zigzag(_ value: Int64) -> UInt64 {
        UInt64(bitPattern: (value << 1) ^ (value >> 63))
    }

    private static func varintSize(_ bits: UInt64) -> Int {
        var size = 1
        var v = bits >> 7
        while v != 0 {
            size += 1
            v >>= 7
        }
        return size
    }

    /// The identity a batch carries: none for a plain producer, the producer id, epoch and base
    /// sequence for an idempotent or transactional one.
    public struct ProducerStamp: Hashable, Sendable {
        public var producerId: Int64
        public var producerEpoch: Int16
        public var baseSequence: Int32
        public var isTransactional: Bool

        public static let none = ProducerStamp(producerId: -1, producerEpoch: -1, baseSequence: -1, isTransactional: false)

        public init(producerId: Int64, producerEpoch: Int16, baseSequence: Int32, isTransactional: Bool) {
            self.producerId = producerId
            self.producerEpoch = producerEpoch
            self.baseSequence = baseSequence
            self.isTransactional = isTransactional
        }
    }

    /// The finished batch bytes. The builder is left intact so a retry can stamp it again.
    public func build(stamp: ProducerStamp = .none, compression: CompressionCodec = .none) throws -> ByteBuffer {
        precondition(recordCount > 0, "an empty batch is never sent")
        let records = try RecordCompression.compress(body, codec: compression)
        var header = RecordBatchHeader(
            baseOffset: 0, batchLength: 0,
            attributes: RecordBatchHeader.attributes(compression: compression, isTransactional: stamp.isTransactional),
            lastOffsetDelta: recordCount - 1, baseTimestamp: baseTimestamp,
            maxTimestamp: baseTimestamp + maxTimestampDelta, producerId: stamp.producerId,
            producerEpoch: stamp.producerEpoch, baseSequence: stamp.baseSequence, recordCount: recordCount)
        header.batchLength = Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead + records.readableBytes)
        var buffer = ByteBufferAllocator().buffer(capacity: RecordBatchHeader.size + records.readableBytes)
        header.write(into: &buffer)
        buffer.writeImmutableBuffer(records)
        // The CRC covers everything from the attributes field (offset 21) to the end.
        let crcStart = 21
        let crc = buffer.withUnsafeReadableBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[crcStart...])) }
        buffer.setInteger(crc, at: 17, endianness: .big)
        return buffer
    }
}
