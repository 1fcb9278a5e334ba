/// Walks the records section of a v2 batch field by field without copying or decoding it, with the
/// rules of Kafka's `DefaultRecord.readFrom`: a batch whose CRC is right can still hold records no
/// reader can parse, and a broker that stores one makes every consumer stop at it.
enum RecordSectionChecker {
    /// What is wrong with a records section.
    enum Problem: Equatable {
        /// Record `index` (0-based, in batch order) cannot be parsed, or the section does not hold
        /// exactly `recordCount` records; Kafka answers both with INVALID_RECORD.
        case malformed(index: Int, reason: String)
        /// Records without a key, refused on a compacted topic.
        case keyless(indexes: [Int])
    }

    /// Checks that `bytes` holds exactly `count` well-formed records; with `requireKeys`, that
    /// each has a key.
    static func check(_ bytes: UnsafeRawBufferPointer, count: Int32, requireKeys: Bool) -> Problem? {
        var cursor = Cursor(bytes: bytes, at: 0, end: bytes.count)
        var keyless: [Int] = []
        for index in 0..<Int(max(count, 0)) {
            do throws(Malformed) {
                guard cursor.at < cursor.end else {
                    throw Malformed("the batch declares \(count) records but ends after \(index)")
                }
                if try checkRecord(&cursor) == false && requireKeys { keyless.append(index) }
            } catch {
                return .malformed(index: index, reason: error.reason)
            }
        }
        if cursor.at != cursor.end {
            return .malformed(
                index: Int(count) - 1,
                reason: "\(cursor.end - cursor.at) bytes remain after the \(count) records the batch declares")
        }
        return keyless.isEmpty ? nil : .keyless(indexes: keyless)
    }

    /// Checks one length-prefixed record and moves past it; returns whether it has a key.
    private static func checkRecord(_ cursor: inout Cursor) throws(Malformed) -> Bool {
        let length = Int(try cursor.varint())
        guard length >= 0 else { throw Malformed("record length \(length) is negative") }
        guard length <= cursor.end - cursor.at else {
            throw Malformed("record length \(length) is larger than the \(cursor.end - cursor.at) bytes left")
        }
        var body = Cursor(bytes: cursor.bytes, at: cursor.at, end: cursor.at + length)
        cursor.at += length
        try body.skip(1)  // attributes
        _ = try body.varlong()  // timestamp delta
        _ = try body.varint()  // offset delta
        let hasKey = try body.skipBytesField()
        _ = try body.skipBytesField()  // value
        let headers = try body.varint()
        guard headers >= 0 else { throw Malformed("header count \(headers) is negative") }
        guard Int(headers) <= body.end - body.at else {
            throw Malformed("header count \(headers) is larger than the \(body.end - body.at) bytes left")
        }
        for _ in 0..<headers {
            let keyLength = try body.varint()
            guard keyLength >= 0 else { throw Malformed("header key length \(keyLength) is negative") }
            try body.skip(Int(keyLength))
            _ = try body.skipBytesField()
        }
        guard body.at == body.end else {
            throw Malformed("record length \(length) but its fields take \(length - (body.end - body.at))")
        }
        return hasKey
    }

    struct Malformed: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    /// A read position inside `bytes` that never passes `end`.
    private struct Cursor {
        let bytes: UnsafeRawBufferPointer
        var at: Int
        let end: Int

        mutating func skip(_ n: Int) throws(Malformed) {
            guard n <= end - at else { throw Malformed("a field runs past the end of its record") }
            at += n
        }

        /// Zigzag varint of at most 5 bytes, as Java's `ByteUtils.readVarint`.
        mutating func varint() throws(Malformed) -> Int32 {
            var value: UInt32 = 0
            var shift: UInt32 = 0
            while true {
                guard at < end else { throw Malformed("a varint runs past the end of its record") }
                let byte = bytes[at]
                at += 1
                guard byte & 0x80 != 0 else {
                    value |= UInt32(byte) << shift
                    break
                }
                value |= UInt32(byte & 0x7F) << shift
                shift += 7
                if shift > 28 { throw Malformed("a varint is longer than 5 bytes") }
            }
            return Int32(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
        }

        /// Zigzag varlong of at most 10 bytes.
        mutating func varlong() throws(Malformed) -> Int64 {
            var value: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard at < end else { throw Malformed("a varlong runs past the end of its record") }
                let byte = bytes[at]
                at += 1
                guard byte & 0x80 != 0 else {
                    value |= UInt64(byte) << shift
                    break
                }
                value |= UInt64(byte & 0x7F) << shift
                shift += 7
                if shift > 63 { throw Malformed("a varlong is longer than 10 bytes") }
            }
            return Int64(bitPattern: (value >> 1) ^ (0 &- (value & 1)))
        }

        /// A varint length and that many bytes; a negative length is null, as Kafka reads it.
        /// Returns whether the field is non-null.
        mutating func skipBytesField() throws(Malformed) -> Bool {
            let length = try varint()
            guard length >= 0 else { return false }
            try skip(Int(length))
            return true
        }
    }
}
