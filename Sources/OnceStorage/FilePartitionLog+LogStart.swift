import NIOCore

extension FilePartitionLog {
    /// DeleteRecords can move the log start into the middle of a segment, where the segment files
    /// cannot show it, so it is kept in its own checksummed file beside them (Kafka keeps a
    /// log-start-offset checkpoint for the same reason).
    static let logStartFileName = "log-start-offset"

    var logStartPath: String { directory + "/" + Self.logStartFileName }

    /// The stored log start, or 0 when DeleteRecords never moved it.
    static func readLogStart(directory: String) throws -> Int64 {
        let path = directory + "/" + logStartFileName
        guard PosixFile.exists(path) else { return 0 }
        let bytes = try StateDocument.decode(try PosixFile.readWhole(path), path: path)
        guard bytes.count == 8 else { throw StorageError.corrupt("\(path): \(bytes.count) bytes, expected 8") }
        return bytes.reduce(Int64(0)) { $0 << 8 | Int64($1) }
    }

    func advanceLogStart(to offset: Int64) throws -> Int64 {
        try state.withLock { s in
            if s.isDeleted { throw StorageError.unknownTopic(topic) }
            if !s.isOpen { throw StorageError.io("partition \(topic)-\(partition) is closed") }
            guard offset <= s.logEndOffset else {
                throw StorageError.offsetOutOfRange(requested: offset, logStart: s.logStartOffset, logEnd: s.logEndOffset)
            }
            guard offset > s.logStartOffset else { return s.logStartOffset }
            // Durable before any segment goes, so a crash never shows a start below deleted data.
            let bytes = (0..<8).map { UInt8(truncatingIfNeeded: offset >> (56 - 8 * $0)) }
            try PosixFile.writeAtomically(StateDocument.encode(bytes), to: logStartPath, directory: directory)
            s.startFloor = offset
            // The active segment goes too when everything in it is below the new start.
            if offset == s.logEndOffset && s.segments[s.segments.count - 1].size > 0 {
                try roll(&s, nowMs: currentTimeMillis())
            }
            var count = 0
            while count + 1 < s.segments.count && s.segments[count + 1].baseOffset <= offset { count += 1 }
            let removed = s.segments.prefix(count)
            s.segments.removeFirst(count)
            try Self.remove(removed, from: &s)
            return s.logStartOffset
        }
    }

    var sizeInBytes: Int64 { state.withLock { s in s.segments.reduce(0) { $0 + Int64($1.size) } } }

    func updateConfig(_ config: TopicConfig) {
        state.withLock { $0.config = config }
    }
}
