import KafkaProtocol
import NIOCore
import OnceStorage

/// Reads: from memory when the batches are still there, else one query on the reader's
/// connection, stitched to what memory holds after it so a read across the boundary returns as
/// much as a read of one engine would.
extension PostgresPartitionLog {
    /// A fenced partition serves no reads either: its new leader may have moved on, so a reader
    /// here is sent to look the leader up again (Fetch answers NOT_LEADER_OR_FOLLOWER).
    func read(from offset: Int64, maxBytes: Int, limitOffset: Int64) throws -> ByteBuffer {
        let cached: ByteBuffer? = try state.withLock { s in
            if s.fenced { throw StorageError.notLeader("\(topic)-\(partition): another broker holds the lease") }
            guard offset >= s.logStart, offset <= s.logEnd else {
                throw StorageError.offsetOutOfRange(requested: offset, logStart: s.logStart, logEnd: s.logEnd)
            }
            guard offset < s.logEnd else { return ByteBuffer() }
            return offset >= s.recent.start ? s.recent.read(from: offset, maxBytes: maxBytes, limitOffset: limitOffset).0 : nil
        }
        if let cached { return cached }
        var out = try readStored(from: offset, maxBytes: maxBytes, limitOffset: limitOffset)
        guard out.readableBytes > 0 else {
            // Retention moved the start past the rows meanwhile: the reader hears where it is now.
            let (start, end) = state.withLock { ($0.logStart, $0.logEnd) }
            if offset < start { throw StorageError.offsetOutOfRange(requested: offset, logStart: start, logEnd: end) }
            return out
        }
        let next = try Self.nextOffset(after: out)
        guard next < limitOffset, out.readableBytes < maxBytes else { return out }
        let more: ByteBuffer? = state.withLock { s in
            guard next >= s.recent.start, next < s.logEnd else { return nil }
            return s.recent.read(from: next, maxBytes: maxBytes - out.readableBytes, limitOffset: limitOffset, first: false).0
        }
        if let more { out.writeImmutableBuffer(more) }
        return out
    }

    /// The earliest batch whose max timestamp reaches `timestamp`: the segment summaries say
    /// where to look, and one query per candidate segment looks there.
    func offset(forTimestamp timestamp: Int64) throws -> (offset: Int64, timestamp: Int64)? {
        let (candidates, start) = state.withLock { s in
            let ends = s.segments.dropFirst().map(\.baseOffset) + [Int64.max]
            return (zip(s.segments, ends).filter { $0.0.maxTimestamp >= timestamp }.map { ($0.0.baseOffset, $0.1) }, s.logStart)
        }
        for (base, end) in candidates {
            // Memory first, in one look: what it no longer holds then is below its start, and
            // everything below its start is committed, so the query cannot miss a batch that
            // moved out meanwhile.
            let (cached, recentStart) = state.withLock { s in
                (s.recent.first(reaching: timestamp, from: max(base, s.logStart), before: end), s.recent.start)
            }
            if base < recentStart, let found = try findStored(reaching: timestamp, from: max(base, start), before: min(end, recentStart)) {
                return (max(found.offset, start), found.timestamp)
            }
            if let cached { return (max(cached.baseOffset, start), cached.maxTimestamp) }
        }
        return nil
    }

    private static func nextOffset(after buffer: ByteBuffer) throws -> Int64 {
        var position = buffer.readerIndex
        var last: Int64 = -1
        while position < buffer.writerIndex {
            let header = try RecordBatchHeader(reading: buffer, at: position)
            last = header.lastOffset
            position += header.totalSize
        }
        return last + 1
    }

    /// One query: the batch holding `offset` (found through the primary key, newest base offset at
    /// or below it) and the ones after it, whole, up to `maxBytes` (the first one whatever its
    /// size) and never reaching `limitOffset`. The row cap bounds what the database scans for a
    /// read of many small batches; the caller reads on from where this ended.
    private func readStored(from offset: Int64, maxBytes: Int, limitOffset: Int64) throws -> ByteBuffer {
        let (topic, partition) = (self.topic, self.partition)
        let rowCap = Int64(min(maxBytes / RecordBatchHeader.size + 1, Self.maxRowsPerRead))
        let rows = try reader.run { c in
            let rows = try c.query(
                """
                SELECT bytes FROM (
                    SELECT bytes, octet_length(bytes) AS size,
                        sum(octet_length(bytes)) OVER (ORDER BY base_offset) - octet_length(bytes) AS before
                    FROM batches
                    WHERE topic = $1 AND partition = $2 AND last_offset >= $3 AND last_offset < $4
                        AND base_offset >= coalesce((SELECT max(base_offset) FROM batches
                            WHERE topic = $1 AND partition = $2 AND base_offset <= $3), $3)
                    ORDER BY base_offset LIMIT $6) w
                WHERE before = 0 OR before + size <= $5
                ORDER BY before
                """,
                [.string(topic), .int32(partition), .int64(offset), .int64(limitOffset), .int64(Int64(maxBytes)),
                 .int64(rowCap)], binaryResults: true)
            return (0..<rows.count).map { rows.bytes($0, 0) }
        }
        stats.missed(batches: rows.count)
        var out = ByteBuffer()
        out.reserveCapacity(rows.reduce(0) { $0 + $1.count })
        for row in rows { out.writeBytes(row) }
        return out
    }

    /// The first stored batch in `[from, before)` whose max timestamp reaches `timestamp`.
    private func findStored(reaching timestamp: Int64, from: Int64, before: Int64) throws -> (offset: Int64, timestamp: Int64)? {
        let (topic, partition) = (self.topic, self.partition)
        let found = try reader.run { c -> (Int64, Int64)? in
            let rows = try c.query(
                """
                SELECT base_offset, max_timestamp FROM batches
                WHERE topic = $1 AND partition = $2 AND last_offset >= $3 AND base_offset < $4 AND max_timestamp >= $5
                    AND base_offset >= coalesce((SELECT max(base_offset) FROM batches
                        WHERE topic = $1 AND partition = $2 AND base_offset <= $3), $3)
                ORDER BY base_offset LIMIT 1
                """,
                [.string(topic), .int32(partition), .int64(from), .int64(before), .int64(timestamp)])
            return rows.count == 0 ? nil : (rows.int(0, 0), rows.int(0, 1))
        }
        stats.missed(batches: found == nil ? 0 : 1)
        return found.map { (offset: $0.0, timestamp: $0.1) }
    }

    /// The most batches one read asks the table for: at the smallest batch size a Fetch's
    /// megabyte, so the database's work per read stays bounded whatever `maxBytes` says.
    static let maxRowsPerRead = 16_384
}
