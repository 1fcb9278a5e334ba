import NIOCore

/// A decoding failure. The broker answers it by closing the one connection that sent it.
public enum KafkaProtocolError: Error, Equatable, Sendable {
    /// The buffer ended before the value did.
    case truncated(String)
    /// A length, varint or enum value no valid message carries.
    case invalid(String)
    /// An API key or version this codec does not implement.
    case unsupportedVersion(apiKey: Int16, version: Int16)
}

/// A tagged field the codec does not know, kept so that a round trip preserves it.
public struct UnknownTaggedField: Hashable, Sendable {
    public var tag: UInt32
    public var data: [UInt8]
    public init(tag: UInt32, data: [UInt8]) {
        self.tag = tag
        self.data = data
    }
}

/// Reading Kafka's primitive types. Every read throws `KafkaProtocolError.truncated` instead of
/// trapping, because the bytes come from the network.
extension ByteBuffer {
    @inlinable
    public mutating func readKafkaInt<T: FixedWidthInteger>(_: T.Type = T.self) throws -> T {
        guard let v = readInteger(endianness: .big, as: T.self) else {
            throw KafkaProtocolError.truncated("\(T.self)")
        }
        return v
    }

    @inlinable
    public mutating func readKafkaBool() throws -> Bool {
        try readKafkaInt(UInt8.self) != 0
    }

    public mutating func readKafkaFloat64() throws -> Double {
        Double(bitPattern: try readKafkaInt(UInt64.self))
    }

    /// An unsigned LEB128 varint of at most 32 bits.
    @inlinable
    public mutating func readUnsignedVarint() throws -> UInt32 {
        var result: UInt32 = 0
        var shift: UInt32 = 0
        while true {
            let byte: UInt8 = try readKafkaInt()
            if shift == 28 && byte & 0xF0 != 0 { throw KafkaProtocolError.invalid("varint overflow") }
            result |= UInt32(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// An unsigned LEB128 varint of at most 64 bits.
    @inlinable
    public mutating func readUnsignedVarlong() throws -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let byte: UInt8 = try readKafkaInt()
            if shift == 63 && byte & 0xFE != 0 { throw KafkaProtocolError.invalid("varlong overflow") }
            result |= UInt64(byte & 0x7F) << shift
            if byte & 0x80 == 0 { return result }
            shift += 7
        }
    }

    /// A zigzag-encoded signed varint (record fields).
    @inlinable
    public mutating func readVarint() throws -> Int32 {
        let u = try readUnsignedVarint()
        return Int32(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    /// A zigzag-encoded signed varlong (record fields).
    @inlinable
    public mutating func readVarlong() throws -> Int64 {
        let u = try readUnsignedVarlong()
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    @inlinable
    public mutating func writeUnsignedVarint(_ value: UInt32) {
        var v = value
        while v >= 0x80 {
            writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        writeInteger(UInt8(v))
    }

    @inlinable
    public mutating func writeUnsignedVarlong(_ value: UInt64) {
        var v = value
        while v >= 0x80 {
            writeInteger(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        writeInteger(UInt8(v))
    }

    @inlinable
    public mutating func writeVarint(_ value: Int32) {
        writeUnsignedVarint(UInt32(bitPattern: (value << 1) ^ (value >> 31)))
    }

    @inlinable
    public mutating func writeVarlong(_ value: Int64) {
        writeUnsignedVarlong(UInt64(bitPattern: (value << 1) ^ (value >> 63)))
    }

    @inlinable
    public mutating func writeKafkaBool(_ value: Bool) {
        writeInteger(UInt8(value ? 1 : 0))
    }

    public mutating func writeKafkaFloat64(_ value: Double) {
        writeInteger(value.bitPattern, endianness: .big)
    }

    // MARK: Lengths

    /// Reads a length prefix: int16/int32 for classic encodings, unsigned varint minus one for compact
    /// ones. Returns nil for the null marker (-1).
    @inlinable
    mutating func readLength(compact: Bool, wide: Bool) throws -> Int? {
        let n: Int
        if compact {
            n = Int(try readUnsignedVarint()) - 1
        } else if wide {
            n = Int(try readKafkaInt(Int32.self))
        } else {
            n = Int(try readKafkaInt(Int16.self))
        }
        if n < 0 {
            if n == -1 { return nil }
            throw KafkaProtocolError.invalid("negative length \(n)")
        }
        return n
    }

    @inlinable
    mutating func writeLength(_ n: Int?, compact: Bool, wide: Bool) {
        if compact {
            writeUnsignedVarint(UInt32(n.map { $0 + 1 } ?? 0))
        } else if wide {
            writeInteger(Int32(n ?? -1), endianness: .big)
        } else {
            writeInteger(Int16(n ?? -1), endianness: .big)
        }
    }

    // MARK: Strings

    public mutating func readKafkaNullableString(compact: Bool) throws -> String? {
        guard let n = try readLength(compact: compact, wide: false) else { return nil }
        guard let s = readString(length: n) else { throw KafkaProtocolError.truncated("string") }
        return s
    }

    public mutating func readKafkaString(compact: Bool) throws -> String {
        guard let s = try readKafkaNullableString(compact: compact) else {
            throw KafkaProtocolError.invalid("null string in a non-nullable field")
        }
        return s
    }

    public mutating func writeKafkaString(_ s: String?, compact: Bool) {
        guard let s else {
            writeLength(nil, compact: compact, wide: false)
            return
        }
        writeLength(s.utf8.count, compact: compact, wide: false)
        writeString(s)
    }

    // MARK: Bytes

    public mutating func readKafkaNullableBytes(compact: Bool) throws -> [UInt8]? {
        guard let n = try readLength(compact: compact, wide: true) else { return nil }
        guard let b = readBytes(length: n) else { throw KafkaProtocolError.truncated("bytes") }
        return b
    }

    public mutating func readKafkaBytes(compact: Bool) throws -> [UInt8] {
        guard let b = try readKafkaNullableBytes(compact: compact) else {
            throw KafkaProtocolError.invalid("null bytes in a non-nullable field")
        }
        return b
    }

    public mutating func writeKafkaBytes(_ b: [UInt8]?, compact: Bool) {
        guard let b else {
            writeLength(nil, compact: compact, wide: true)
            return
        }
        writeLength(b.count, compact: compact, wide: true)
        writeBytes(b)
    }

    /// Record data: a slice of the request buffer, not a copy, so the broker can store it as sent.
    public mutating func readKafkaRecords(compact: Bool) throws -> ByteBuffer? {
        guard let n = try readLength(compact: compact, wide: true) else { return nil }
        guard let slice = readSlice(length: n) else { throw KafkaProtocolError.truncated("records") }
        return slice
    }

    public mutating func writeKafkaRecords(_ records: ByteBuffer?, compact: Bool) {
        guard var records else {
            writeLength(nil, compact: compact, wide: true)
            return
        }
        writeLength(records.readableBytes, compact: compact, wide: true)
        writeBuffer(&records)
    }

    // MARK: UUID

    public mutating func readKafkaUUID() throws -> KafkaUUID {
        KafkaUUID(high: try readKafkaInt(), low: try readKafkaInt())
    }

    public mutating func writeKafkaUUID(_ id: KafkaUUID) {
        writeInteger(id.high, endianness: .big)
        writeInteger(id.low, endianness: .big)
    }

    // MARK: Arrays

    /// Reads an array count; nil for a null array.
    public mutating func readKafkaArrayCount(compact: Bool) throws -> Int? {
        let n: Int
        if compact {
            n = Int(try readUnsignedVarint()) - 1
        } else {
            n = Int(try readKafkaInt(Int32.self))
        }
        if n < 0 {
            if n == -1 { return nil }
            throw KafkaProtocolError.invalid("negative array length \(n)")
        }
        // Every element takes at least one byte; a larger count is a lie that would make us allocate.
        guard n <= readableBytes else { throw KafkaProtocolError.truncated("array of \(n)") }
        return n
    }

    public mutating func writeKafkaArrayCount(_ n: Int?, compact: Bool) {
        if compact {
            writeUnsignedVarint(UInt32(n.map { $0 + 1 } ?? 0))
        } else {
            writeInteger(Int32(n ?? -1), endianness: .big)
        }
    }

    // MARK: Tagged fields

    /// Reads a tagged-field section, handing each known tag to `known`, which returns false for a tag
    /// it does not know; those are kept as `UnknownTaggedField`s.
    public mutating func readTaggedFields(
        _ known: (UInt32, inout ByteBuffer) throws -> Bool
    ) throws -> [UnknownTaggedField] {
        let count = try readUnsignedVarint()
        var unknown: [UnknownTaggedField] = []
        for _ in 0..<count {
            let tag = try readUnsignedVarint()
            let size = Int(try readUnsignedVarint())
            guard var field = readSlice(length: size) else { throw KafkaProtocolError.truncated("tagged field") }
            if try !known(tag, &field) {
                unknown.append(UnknownTaggedField(tag: tag, data: field.readBytes(length: field.readableBytes) ?? []))
            }
        }
        return unknown
    }

    /// Writes a tagged-field section: `fields` must be sorted by tag, each with its encoded value.
    public mutating func writeTaggedFields(_ fields: [(tag: UInt32, value: ByteBuffer)], unknown: [UnknownTaggedField]) {
        var all: [(UInt32, [UInt8])] = fields.map { ($0.tag, Array($0.value.readableBytesView)) }
        all.append(contentsOf: unknown.map { ($0.tag, $0.data) })
        all.sort { $0.0 < $1.0 }
        writeUnsignedVarint(UInt32(all.count))
        for (tag, data) in all {
            writeUnsignedVarint(tag)
            writeUnsignedVarint(UInt32(data.count))
            writeBytes(data)
        }
    }

    /// Writes an empty tagged-field section (the common case, without allocation).
    @inlinable
    public mutating func writeEmptyTaggedFields() {
        writeInteger(UInt8(0))
    }
}

/// Kafka's 128-bit UUID (topic ids).
public struct KafkaUUID: Hashable, Sendable, CustomStringConvertible {
    public var high: UInt64
    public var low: UInt64
    public init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }
    public static let zero = KafkaUUID(high: 0, low: 0)

    public static func random() -> KafkaUUID {
        var g = SystemRandomNumberGenerator()
        return KafkaUUID(high: g.next(), low: g.next())
    }

    public var description: String {
        let h = String(high, radix: 16), l = String(low, radix: 16)
        return String(repeating: "0", count: 16 - h.count) + h + String(repeating: "0", count: 16 - l.count) + l
    }
}
