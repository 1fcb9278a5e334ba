import NIOCore

/// The fixed 61-byte head of a RecordBatch v2. Reading it alone is enough for everything the broker
/// does per batch on the hot path (validation, offsets, idempotence), so records stay undecoded bytes.
public struct RecordBatchHeader: Sendable, Hashable {
    public var baseOffset: Int64
    /// Bytes after this field to the end of the batch.
    public var batchLength: Int32
    public var partitionLeaderEpoch: Int32
    public var magic: Int8
    /// CRC-32C of the bytes from `attributes` to the end of the batch, as stored.
    public var crc: UInt32
    public var attributes: Int16
    public var lastOffsetDelta: Int32
    public var baseTimestamp: Int64
    public var maxTimestamp: Int64
    public var producerId: Int64
    public var producerEpoch: Int16
    public var baseSequence: Int32
    public var recordCount: Int32

    public static let size = 61
    /// Bytes before the part `batchLength` counts: baseOffset and batchLength itself.
    public static let logOverhead = 12
    /// The smallest legal `batchLength`: a header with no records.
    public static let minimumBatchLength: Int32 = Int32(size - logOverhead)
    public static let currentMagic: Int8 = 2

    // Byte offsets of the fields within a batch.
    static let batchLengthOffset = 8
    static let partitionLeaderEpochOffset = 12
    static let magicOffset = 16
    public static let crcOffset = 17
    /// Where the CRC-covered part begins.
    public static let attributesOffset = 21
    static let lastOffsetDeltaOffset = 23
    static let baseTimestampOffset = 27
    static let maxTimestampOffset = 35
    static let producerIdOffset = 43
    static let producerEpochOffset = 51
    static let baseSequenceOffset = 53
    static let recordCountOffset = 57

    // Attribute bits.
    static let compressionMask: Int16 = 0x07
    static let timestampTypeBit: Int16 = 0x08
    static let transactionalBit: Int16 = 0x10
    static let controlBit: Int16 = 0x20
    static let deleteHorizonBit: Int16 = 0x40

    public init(
        baseOffset: Int64,
        batchLength: Int32,
        partitionLeaderEpoch: Int32 = -1,
        magic: Int8 = RecordBatchHeader.currentMagic,
        crc: UInt32 = 0,
        attributes: Int16 = 0,
        lastOffsetDelta: Int32,
        baseTimestamp: Int64,
        maxTimestamp: Int64,
        producerId: Int64 = -1,
        producerEpoch: Int16 = -1,
        baseSequence: Int32 = -1,
        recordCount: Int32
    ) {
        self.baseOffset = baseOffset
        self.batchLength = batchLength
        self.partitionLeaderEpoch = partitionLeaderEpoch
        self.magic = magic
        self.crc = crc
        self.attributes = attributes
        self.lastOffsetDelta = lastOffsetDelta
        self.baseTimestamp = baseTimestamp
        self.maxTimestamp = maxTimestamp
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.baseSequence = baseSequence
        self.recordCount = recordCount
    }

    /// Parses the header of the batch that starts at `index` without moving the reader index.
    /// Throws for a short buffer, a magic other than 2 (whose layout differs) and an unassigned codec.
    public init(reading buffer: ByteBuffer, at index: Int) throws {
        guard index >= buffer.readerIndex, index <= buffer.writerIndex - Self.size else {
            throw KafkaProtocolError.truncated("record batch header")
        }
        self = buffer.withUnsafeReadableBytes { Self(unchecked: $0, at: index - buffer.readerIndex) }
        guard magic == Self.currentMagic else {
            throw KafkaProtocolError.invalid("record batch magic \(magic)")
        }
        guard CompressionCodec(rawValue: attributes & Self.compressionMask) != nil else {
            throw KafkaProtocolError.invalid("compression codec \(attributes & Self.compressionMask)")
        }
    }

    /// Reads the fields at `offset` with no checks beyond the caller's: `bytes` must hold `size`
    /// bytes from there. The validator uses this so a whole record set is walked under one pointer.
    init(unchecked bytes: UnsafeRawBufferPointer, at offset: Int) {
        @inline(__always) func load<T: FixedWidthInteger>(_ at: Int, _: T.Type) -> T {
            T(bigEndian: bytes.loadUnaligned(fromByteOffset: offset + at, as: T.self))
        }
        self.init(
            baseOffset: load(0, Int64.self),
            batchLength: load(Self.batchLengthOffset, Int32.self),
            partitionLeaderEpoch: load(Self.partitionLeaderEpochOffset, Int32.self),
            magic: load(Self.magicOffset, Int8.self),
            crc: load(Self.crcOffset, UInt32.self),
            attributes: load(Self.attributesOffset, Int16.self),
            lastOffsetDelta: load(Self.lastOffsetDeltaOffset, Int32.self),
            baseTimestamp: load(Self.baseTimestampOffset, Int64.self),
            maxTimestamp: load(Self.maxTimestampOffset, Int64.self),
            producerId: load(Self.producerIdOffset, Int64.self),
            producerEpoch: load(Self.producerEpochOffset, Int16.self),
            baseSequence: load(Self.baseSequenceOffset, Int32.self),
            recordCount: load(Self.recordCountOffset, Int32.self)
        )
    }

    /// Writes the 61 header bytes as the fields hold them; `crc` and `batchLength` are not recomputed.
    public func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(baseOffset, endianness: .big)
        buffer.writeInteger(batchLength, endianness: .big)
        buffer.writeInteger(partitionLeaderEpoch, endianness: .big)
        buffer.writeInteger(magic, endianness: .big)
        buffer.writeInteger(crc, endianness: .big)
        buffer.writeInteger(attributes, endianness: .big)
        buffer.writeInteger(lastOffsetDelta, endianness: .big)
        buffer.writeInteger(baseTimestamp, endianness: .big)
        buffer.writeInteger(maxTimestamp, endianness: .big)
        buffer.writeInteger(producerId, endianness: .big)
        buffer.writeInteger(producerEpoch, endianness: .big)
        buffer.writeInteger(baseSequence, endianness: .big)
        buffer.writeInteger(recordCount, endianness: .big)
    }

    // MARK: Derived values

    /// The codec in the attributes. An unassigned id (5-7) reads as `.none` here; `init(reading:at:)`
    /// and the validator reject such batches before anyone asks.
    public var compression: CompressionCodec {
        CompressionCodec(rawValue: attributes & Self.compressionMask) ?? .none
    }

    public var timestampType: TimestampType {
        attributes & Self.timestampTypeBit != 0 ? .logAppendTime : .createTime
    }

    public var isTransactional: Bool { attributes & Self.transactionalBit != 0 }
    public var isControl: Bool { attributes & Self.controlBit != 0 }
    /// Set by log compaction (KIP-534): baseTimestamp then holds the delete horizon.
    public var hasDeleteHorizon: Bool { attributes & Self.deleteHorizonBit != 0 }
    /// Whether the batch came from an idempotent or transactional producer.
    public var hasProducerId: Bool { producerId >= 0 }

    public var lastOffset: Int64 { baseOffset + Int64(lastOffsetDelta) }
    /// The offset the batch after this one starts at.
    public var nextOffset: Int64 { lastOffset + 1 }
    /// The whole batch in bytes, header included.
    public var totalSize: Int { Int(batchLength) + Self.logOverhead }

    /// The sequence number of the last record, wrapping as Kafka's does at Int32.max.
    public var lastSequence: Int32 {
        guard baseSequence >= 0 else { return -1 }
        let last = Int64(baseSequence) + Int64(lastOffsetDelta)
        return last > Int64(Int32.max) ? Int32(last - Int64(Int32.max) - 1) : Int32(last)
    }

    /// Builds the attributes field from its parts.
    public static func attributes(
        compression: CompressionCodec = .none,
        timestampType: TimestampType = .createTime,
        isTransactional: Bool = false,
        isControl: Bool = false,
        hasDeleteHorizon: Bool = false
    ) -> Int16 {
        var a = compression.rawValue
        if timestampType == .logAppendTime { a |= timestampTypeBit }
        if isTransactional { a |= transactionalBit }
        if isControl { a |= controlBit }
        if hasDeleteHorizon { a |= deleteHorizonBit }
        return a
    }
}
