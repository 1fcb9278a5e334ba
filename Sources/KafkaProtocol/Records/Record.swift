import NIOCore

/// A header on one record. Keys are never null on the wire; values may be.
public struct RecordHeader: Sendable, Hashable {
    public var key: String
    public var value: [UInt8]?

    public init(key: String, value: [UInt8]?) {
        self.key = key
        self.value = value
    }
}

/// One record inside a v2 batch. Offsets and timestamps are deltas from the batch header's base values.
public struct Record: Sendable, Hashable {
    /// Unused by every Kafka version so far; kept so a round trip preserves it.
    public var attributes: Int8
    public var timestampDelta: Int64
    public var offsetDelta: Int32
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [RecordHeader]

    public init(
        attributes: Int8 = 0,
        timestampDelta: Int64 = 0,
        offsetDelta: Int32,
        key: [UInt8]?,
        value: [UInt8]?,
        headers: [RecordHeader] = []
    ) {
        self.attributes = attributes
        self.timestampDelta = timestampDelta
        self.offsetDelta = offsetDelta
        self.key = key
        self.value = value
        self.headers = headers
    }
}

extension Record {
    /// Reads one record: its length prefix, then a body that must use exactly that many bytes.
    public static func decode(from buffer: inout ByteBuffer) throws -> Record {
        let length = Int(try buffer.readVarint())
        guard length >= 0 else { throw KafkaProtocolError.invalid("record length \(length)") }
        guard var body = buffer.readSlice(length: length) else { throw KafkaProtocolError.truncated("record") }
        let attributes: Int8 = try body.readKafkaInt()
        let timestampDelta = try body.readVarlong()
        let offsetDelta = try body.readVarint()
        let key = try body.readVarintBytes()
        let value = try body.readVarintBytes()
        let headerCount = Int(try body.readVarint())
        // A header takes at least two bytes, so a larger count cannot be honest.
        guard headerCount >= 0, headerCount <= body.readableBytes / 2 else {
            throw KafkaProtocolError.invalid("record header count \(headerCount)")
        }
        var headers: [RecordHeader] = []
        headers.reserveCapacity(headerCount)
        for _ in 0..<headerCount {
            guard let keyBytes = try body.readVarintBytesSlice() else {
                throw KafkaProtocolError.invalid("null record header key")
            }
            guard let headerKey = keyBytes.getString(at: keyBytes.readerIndex, length: keyBytes.readableBytes) else {
                throw KafkaProtocolError.invalid("record header key")
            }
            headers.append(RecordHeader(key: headerKey, value: try body.readVarintBytes()))
        }
        guard body.readableBytes == 0 else {
            throw KafkaProtocolError.invalid("record has \(body.readableBytes) bytes past its fields")
        }
        return Record(
            attributes: attributes, timestampDelta: timestampDelta, offsetDelta: offsetDelta,
            key: key, value: value, headers: headers)
    }

    /// Writes the record with its length prefix. The body size is computed up front so nothing is
    /// written twice or moved.
    public func encode(into buffer: inout ByteBuffer) {
        buffer.writeVarint(Int32(bodySize))
        buffer.writeInteger(attributes)
        buffer.writeVarlong(timestampDelta)
        buffer.writeVarint(offsetDelta)
        buffer.writeVarintBytes(key)
        buffer.writeVarintBytes(value)
        buffer.writeVarint(Int32(headers.count))
        for header in headers {
            buffer.writeVarint(Int32(header.key.utf8.count))
            buffer.writeString(header.key)
            buffer.writeVarintBytes(header.value)
        }
    }

    /// Bytes the record takes on the wire, length prefix included.
    public var encodedSize: Int {
        let body = bodySize
        return VarintSize.of(Int32(body)) + body
    }

    private var bodySize: Int {
        var n = 1 + VarintSize.of(timestampDelta) + VarintSize.of(offsetDelta)
        n += VarintSize.ofBytes(key?.count) + VarintSize.ofBytes(value?.count)
        n += VarintSize.of(Int32(headers.count))
        for header in headers {
            n += VarintSize.ofBytes(header.key.utf8.count) + VarintSize.ofBytes(header.value?.count)
        }
        return n
    }
}

/// Sizes of zigzag varints, so record lengths are known before writing.
enum VarintSize {
    static func of(_ value: Int32) -> Int {
        unsigned(UInt64(UInt32(bitPattern: (value << 1) ^ (value >> 31))))
    }

    static func of(_ value: Int64) -> Int {
        unsigned(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    /// A length-prefixed byte field: the prefix plus the bytes, or the prefix alone for null (-1).
    static func ofBytes(_ count: Int?) -> Int {
        guard let count else { return of(Int32(-1)) }
        return of(Int32(count)) + count
    }

    private static func unsigned(_ v: UInt64) -> Int {
        // Seven payload bits per byte; zero still takes one byte.
        max(1, (64 - v.leadingZeroBitCount + 6) / 7)
    }
}

extension ByteBuffer {
    /// A record field: zigzag varint length, -1 for null, then the bytes.
    mutating func readVarintBytesSlice() throws -> ByteBuffer? {
        let n = Int(try readVarint())
        if n < 0 {
            guard n == -1 else { throw KafkaProtocolError.invalid("record field length \(n)") }
            return nil
        }
        guard let slice = readSlice(length: n) else { throw KafkaProtocolError.truncated("record field") }
        return slice
    }

    mutating func readVarintBytes() throws -> [UInt8]? {
        guard let slice = try readVarintBytesSlice() else { return nil }
        return Array(slice.readableBytesView)
    }

    mutating func writeVarintBytes(_ bytes: [UInt8]?) {
        guard let bytes else {
            writeVarint(-1)
            return
        }
        writeVarint(Int32(bytes.count))
        writeBytes(bytes)
    }
}
