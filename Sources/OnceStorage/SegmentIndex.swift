import NIOCore

/// Sparse map from offset to file position for one segment: an entry (base offset of a batch
/// relative to the segment base, byte position of that batch) roughly every index.interval.bytes.
/// On disk: 8-byte entries, int32 relative offset then int32 position, big-endian. The index is
/// derived data: kept in memory, written when a segment stops being active, and rebuilt from the
/// log whenever the file is missing or disagrees with it.
struct OffsetIndex: Sendable, Equatable {
    static let entrySize = 8
    private(set) var relativeOffsets: [Int32] = []
    private(set) var positions: [Int32] = []

    var count: Int { positions.count }

    mutating func append(relativeOffset: Int32, position: Int32) {
        relativeOffsets.append(relativeOffset)
        positions.append(position)
    }

    /// Position of the last indexed batch starting at or before `relativeOffset`; 0 if none, since
    /// the first batch of a segment starts there.
    func position(atOrBefore relativeOffset: Int64) -> Int {
        var lo = 0
        var hi = relativeOffsets.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if Int64(relativeOffsets[mid]) <= relativeOffset { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? 0 : Int(positions[lo - 1])
    }

    func serialized() -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count * Self.entrySize)
        for i in 0..<count {
            buffer.writeInteger(relativeOffsets[i], endianness: .big)
            buffer.writeInteger(positions[i], endianness: .big)
        }
        return buffer
    }

    /// Nil when the bytes cannot be an index of a segment of `segmentSize` bytes: a partial entry,
    /// or offsets or positions that do not grow, or a position past the end.
    static func parse(_ buffer: ByteBuffer, segmentSize: Int) -> OffsetIndex? {
        guard buffer.readableBytes % entrySize == 0 else { return nil }
        var buffer = buffer
        var index = OffsetIndex()
        while buffer.readableBytes > 0 {
            let relative = buffer.readInteger(endianness: .big, as: Int32.self)!
            let position = buffer.readInteger(endianness: .big, as: Int32.self)!
            if let last = index.relativeOffsets.last, relative <= last || position <= index.positions.last! {
                return nil
            }
            guard relative >= 0, position > 0, Int(position) < segmentSize else { return nil }
            index.append(relativeOffset: relative, position: position)
        }
        return index
    }
}

/// Sparse map from timestamp to offset for one segment: an entry (max timestamp so far, relative
/// base offset of the batch that set it) whenever an offset index entry is added and the maximum
/// has grown, plus one when the segment stops being active. Every batch up to and including the
/// entry's batch has a max timestamp <= the entry's. On disk: 12-byte entries, int64 timestamp then
/// int32 relative offset, big-endian.
struct TimeIndex: Sendable, Equatable {
    static let entrySize = 12
    private(set) var timestamps: [Int64] = []
    private(set) var relativeOffsets: [Int32] = []

    var count: Int { timestamps.count }
    var lastTimestamp: Int64 { timestamps.last ?? -1 }
    var lastRelativeOffset: Int32? { relativeOffsets.last }

    mutating func appendIfGrown(timestamp: Int64, relativeOffset: Int32) {
        guard timestamp > lastTimestamp else { return }
        timestamps.append(timestamp)
        relativeOffsets.append(relativeOffset)
    }

    /// Relative offset of the last entry below `timestamp`: no batch at or before that entry's
    /// batch can answer a search for `timestamp`, so a scan may start there. Nil: scan from the start.
    func relativeOffset(below timestamp: Int64) -> Int32? {
        var lo = 0
        var hi = timestamps.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if timestamps[mid] < timestamp { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : relativeOffsets[lo - 1]
    }

    func serialized() -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count * Self.entrySize)
        for i in 0..<count {
            buffer.writeInteger(timestamps[i], endianness: .big)
            buffer.writeInteger(relativeOffsets[i], endianness: .big)
        }
        return buffer
    }

    /// Nil when the bytes cannot be a time index: a partial entry, or timestamps or offsets that
    /// go backwards, or an offset at or past `nextRelativeOffset`.
    static func parse(_ buffer: ByteBuffer, nextRelativeOffset: Int64) -> TimeIndex? {
        guard buffer.readableBytes % entrySize == 0 else { return nil }
        var buffer = buffer
        var index = TimeIndex()
        while buffer.readableBytes > 0 {
            let timestamp = buffer.readInteger(endianness: .big, as: Int64.self)!
            let relative = buffer.readInteger(endianness: .big, as: Int32.self)!
            if let last = index.relativeOffsets.last, relative < last || timestamp <= index.lastTimestamp {
                return nil
            }
            guard relative >= 0, Int64(relative) < nextRelativeOffset else { return nil }
            index.timestamps.append(timestamp)
            index.relativeOffsets.append(relative)
        }
        return index
    }
}
