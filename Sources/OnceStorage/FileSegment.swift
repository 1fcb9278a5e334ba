import Glibc
import NIOCore

/// One segment of a partition on disk: `<base>.log` holding batches back to back, and its two
/// derived indexes, `<base>.index` and `<base>.timeindex`, which are written when the segment stops
/// being active. The partition's lock guards every mutable field; a descriptor taken from `log`
/// under it may be read without it, for bytes below a `size` observed under the lock, since those
/// never change.
struct FileSegment: Sendable {
    let baseOffset: Int64
    let directory: String
    let log: SegmentFile
    /// Bytes of whole batches in the log.
    var size = 0
    /// Offset after the last batch.
    var nextOffset: Int64
    var offsetIndex = OffsetIndex()
    var timeIndex = TimeIndex()
    var maxTimestamp: Int64 = -1
    /// Base offset of the batch that carries `maxTimestamp`.
    var offsetOfMaxTimestamp: Int64 = -1
    var bytesSinceIndexEntry = 0
    /// Wall time of the first append since this process opened the segment: the start of its
    /// segment.ms age. Client timestamps are not used for rolling, so a producer with a wrong
    /// clock cannot make every append roll.
    var firstAppendMs: Int64?
    var lastAppendMs: Int64

    init(baseOffset: Int64, directory: String, log: SegmentFile, lastAppendMs: Int64) {
        self.baseOffset = baseOffset
        self.directory = directory
        self.log = log
        self.nextOffset = baseOffset
        self.lastAppendMs = lastAppendMs
    }

    /// Creates the empty log file of a new segment.
    static func create(baseOffset: Int64, directory: String, nowMs: Int64, files: FileHandleCache) throws -> FileSegment {
        let path = Self.path(directory, baseOffset, .log)
        let file = try SegmentFile.create(path: path, cache: files)
        try file.truncate(to: 0)
        for kind in [FileKind.index, .timeIndex] { try PosixFile.remove(Self.path(directory, baseOffset, kind)) }
        return FileSegment(baseOffset: baseOffset, directory: directory, log: file, lastAppendMs: nowMs)
    }

    enum FileKind: String {
        case log = ".log"
        case index = ".index"
        case timeIndex = ".timeindex"
    }

    /// `<dir>/<base offset as 20 digits><suffix>`, so names sort in offset order.
    static func path(_ directory: String, _ baseOffset: Int64, _ kind: FileKind) -> String {
        let digits = String(baseOffset)
        return directory + "/" + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + kind.rawValue
    }

    /// The base offset a segment file name encodes, or nil if it is not a segment file.
    static func baseOffset(fromFileName name: String, kind: FileKind) -> Int64? {
        guard name.hasSuffix(kind.rawValue) else { return nil }
        let stem = name.dropLast(kind.rawValue.count)
        guard stem.count == 20, stem.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return nil }
        return Int64(stem)
    }

    func relative(_ offset: Int64) -> Int32 { Int32(offset - baseOffset) }

    /// Accounts for a batch already written at `frame.position` with its final base offset.
    mutating func recordBatch(_ frame: BatchFrame, indexInterval: Int) {
        if frame.maxTimestamp > maxTimestamp {
            maxTimestamp = frame.maxTimestamp
            offsetOfMaxTimestamp = frame.baseOffset
        }
        if bytesSinceIndexEntry > indexInterval {
            offsetIndex.append(relativeOffset: relative(frame.baseOffset), position: Int32(frame.position))
            timeIndex.appendIfGrown(timestamp: maxTimestamp, relativeOffset: relative(offsetOfMaxTimestamp))
            bytesSinceIndexEntry = 0
        }
        bytesSinceIndexEntry += frame.size
        size = frame.position + frame.size
        nextOffset = frame.nextOffset
    }

    /// Called when the segment stops being active: the last time index entry then carries the
    /// segment's maximum, which is how a reopened broker learns it without scanning.
    mutating func seal() {
        if maxTimestamp >= 0 {
            timeIndex.appendIfGrown(timestamp: maxTimestamp, relativeOffset: relative(offsetOfMaxTimestamp))
        }
    }

    /// Writes both indexes: each to a temp file, fsynced, then renamed into place, so an index
    /// file that exists is complete. A crash before the rename leaves no file and a rebuild on open.
    func writeIndexes() throws {
        for (kind, bytes) in [(FileKind.index, offsetIndex.serialized()), (.timeIndex, timeIndex.serialized())] {
            let path = Self.path(directory, baseOffset, kind)
            let temp = path + ".tmp"
            let file = try PosixFile.openFile(temp, create: true)
            try file.truncate(to: 0)
            try file.write(bytes, at: 0)
            try file.sync()
            guard rename(temp, path) == 0 else { throw PosixFile.error("rename", temp) }
        }
    }

    /// Deletes the segment's files; readers holding a descriptor keep reading the unlinked file.
    func removeFiles() throws {
        for kind in [FileKind.index, .timeIndex, .log] { try PosixFile.remove(Self.path(directory, baseOffset, kind)) }
        log.release()
    }
}
