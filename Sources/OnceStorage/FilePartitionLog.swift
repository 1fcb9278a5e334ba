import Glibc
import Logging
import NIOCore
import OnceCore
import Synchronization

/// A partition stored as segment files in its own directory. One lock serialises the partition's
/// appends; file reads happen outside it on bytes that can no longer change, so fetches do not
/// queue behind produces and different partitions never contend.
final class FilePartitionLog: PartitionLog {
    let topic: String
    let partition: Int32
    let directory: String
    let runtime: FileStorageRuntime

    struct Waiter {
        var offset: Int64
        var continuation: CheckedContinuation<Void, any Error>
    }

    struct State {
        var config: TopicConfig
        /// Oldest first; never empty while open, the last one is active.
        var segments: [FileSegment]
        var logEndOffset: Int64
        var isOpen = true
        /// Set when the topic was deleted, so late users get `unknownTopic` rather than an I/O error.
        var isDeleted = false
        /// Logs with appended data not yet fsynced, in append order.
        var unsynced: [SegmentFile] = []
        /// Everything below this offset is on disk.
        var durableOffset: Int64
        var syncInFlight = false
        var waiters: [Waiter] = []
        /// fsync rounds that had data to sync; tests use it to see group commit share syncs.
        var syncRounds = 0
        /// Where DeleteRecords moved the log start; it can lie inside the first segment.
        var startFloor: Int64 = 0
        /// Where the log cleaner's last pass ended: the bytes above it are the dirty part.
        var firstDirtyOffset: Int64 = 0
        /// When the earliest tombstone or marker a cleaner pass stamped may go; `.max` for none.
        var earliestDeleteHorizonMs: Int64 = .max

        var logStartOffset: Int64 { max(segments.first?.baseOffset ?? logEndOffset, startFloor) }
    }

    let state: Mutex<State>
    /// Whom the cleaner tells of the abort markers it removes. The lock is also the cleaner's
    /// gate: it is held from the telling through the swap, so a handler set meanwhile either hears
    /// of the markers or finds them already gone from the log.
    let abortMarkerRemoval = Mutex<(@Sendable ([CleaningPlan.AbortMarker]) -> Void)?>(nil)
    /// Held across a sync round, so a round that finds nothing to sync cannot report the log end
    /// durable while another round's fsync of it is still running.
    let syncLock = Mutex(())

    init(topic: String, partition: Int32, directory: String, runtime: FileStorageRuntime, state: State) {
        self.topic = topic
        self.partition = partition
        self.directory = directory
        self.runtime = runtime
        self.state = Mutex(state)
    }

    var logStartOffset: Int64 { state.withLock { $0.logStartOffset } }
    var logEndOffset: Int64 { state.withLock { $0.logEndOffset } }
    var highWatermark: Int64 {
        state.withLock { runtime.flushPolicy.fetchableEnd(logEnd: $0.logEndOffset, durable: $0.durableOffset) }
    }

    /// Segment base offsets, oldest first; for tests and tools.
    var segmentBaseOffsets: [Int64] { state.withLock { $0.segments.map(\.baseOffset) } }
    var durableOffset: Int64 { state.withLock { $0.durableOffset } }
    var syncRounds: Int { state.withLock { $0.syncRounds } }

    private func checkOpen(_ s: State) throws {
        if s.isDeleted { throw StorageError.unknownTopic(topic) }
        if !s.isOpen { throw StorageError.io("partition \(topic)-\(partition) is closed") }
    }

    // MARK: Append

    func append(_ batches: ByteBuffer) throws -> AppendResult {
        let frames = try BatchFrame.frames(of: batches)
        let offsetCount = frames.reduce(Int64(0)) { $0 + Int64($1.lastOffsetDelta) + 1 }
        let now = currentTimeMillis()
        return try state.withLock { s in
            try checkOpen(s)
            let base = s.logEndOffset
            let next = base + offsetCount
            // Scalars only: a copy of the segment would share its index arrays and make the
            // in-place index update below copy them on every append.
            let activeSize = s.segments[s.segments.count - 1].size
            let activeBase = s.segments[s.segments.count - 1].baseOffset
            let firstAppendMs = s.segments[s.segments.count - 1].firstAppendMs
            if SegmentPolicy.shouldRoll(
                activeSize: activeSize, activeBaseOffset: activeBase, firstAppendMs: firstAppendMs,
                incomingBytes: batches.readableBytes, incomingLastOffset: next - 1, config: s.config, nowMs: now)
            {
                try roll(&s, nowMs: now)
            }
            let last = s.segments.count - 1
            let log = s.segments[last].log
            let position = s.segments[last].size
            do {
                try Self.write(frames, of: batches, firstOffset: base, to: try log.open(), at: position)
            } catch {
                // A partial write must not stay: the next append goes where this one started.
                try? log.truncate(to: position)
                runtime.logger.error("append failed", metadata: ["partition": "\(topic)-\(partition)", "error": "\(error)"])
                throw error
            }
            var filePosition = position
            var offset = base
            for var frame in frames {
                frame.position = filePosition
                frame.baseOffset = offset
                s.segments[last].recordBatch(frame, indexInterval: s.config.indexIntervalBytes)
                filePosition += frame.size
                offset = frame.nextOffset
            }
            if s.segments[last].firstAppendMs == nil { s.segments[last].firstAppendMs = now }
            s.segments[last].lastAppendMs = now
            s.logEndOffset = next
            if s.unsynced.last !== log { s.unsynced.append(log) }
            return AppendResult(baseOffset: base, lastOffset: next - 1, logEndOffset: next)
        }
    }

    /// One pwritev of the caller's bytes with each batch's base offset replaced: the new offsets come
    /// from a small array, the rest of every batch straight from the request buffer, so nothing is copied.
    private static func write(
        _ frames: [BatchFrame], of batches: ByteBuffer, firstOffset: Int64, to log: PosixFile, at position: Int
    ) throws {
        var offsets = [Int64]()
        offsets.reserveCapacity(frames.count)
        var next = firstOffset
        for frame in frames {
            offsets.append(next.bigEndian)
            next += Int64(frame.lastOffsetDelta) + 1
        }
        try offsets.withUnsafeBytes { offsetBytes in
            try batches.withUnsafeReadableBytes { data in
                var iov = [iovec]()
                iov.reserveCapacity(frames.count * 2)
                for (i, frame) in frames.enumerated() {
                    iov.append(iovec(iov_base: UnsafeMutableRawPointer(mutating: offsetBytes.baseAddress! + i * 8), iov_len: 8))
                    iov.append(
                        iovec(
                            iov_base: UnsafeMutableRawPointer(mutating: data.baseAddress! + frame.position + 8),
                            iov_len: frame.size - 8))
                }
                try log.writeFully(&iov, at: position)
            }
        }
    }

    /// Starts a new active segment at the log end. The old one's indexes are written in the
    /// background: they are derived data and a crash before they land only costs a rebuild.
    func roll(_ s: inout State, nowMs: Int64) throws {
        let last = s.segments.count - 1
        s.segments[last].seal()
        let sealed = s.segments[last]
        let segment = try FileSegment.create(
            baseOffset: s.logEndOffset, directory: directory, nowMs: nowMs, files: runtime.files)
        s.segments.append(segment)
        if runtime.flushPolicy != .none { try PosixFile.syncDirectory(directory) }
        let logger = runtime.logger
        runtime.background {
            do {
                try sealed.writeIndexes()
            } catch {
                logger.warning("could not write segment indexes", metadata: ["segment": "\(sealed.log.path)", "error": "\(error)"])
            }
        }
        runtime.logger.debug("rolled segment", metadata: ["partition": "\(topic)-\(partition)", "base": "\(s.logEndOffset)"])
    }

    // MARK: Read

    func read(from offset: Int64, maxBytes: Int, limitOffset: Int64) throws -> ByteBuffer {
        var after: Int64?
        while true {
            // The lock only picks the segment and an index position, and pins the descriptor so
            // retention or the handle cache cannot close it mid-read; the file I/O runs without it.
            let snapshot: (log: PosixFile, start: Int, end: Int, interval: Int, base: Int64)? = try state.withLock { s in
                try checkOpen(s)
                let logStart = s.logStartOffset
                guard offset >= logStart, offset <= s.logEndOffset else {
                    throw StorageError.offsetOutOfRange(requested: offset, logStart: logStart, logEnd: s.logEndOffset)
                }
                guard offset < s.logEndOffset else { return nil }
                let segment: FileSegment
                let start: Int
                if let after {
                    guard let next = s.segments.first(where: { $0.baseOffset > after }) else { return nil }
                    segment = next
                    start = 0
                } else {
                    segment = s.segments[Self.segmentIndex(containing: offset, in: s.segments)]
                    start = segment.offsetIndex.position(atOrBefore: offset - segment.baseOffset)
                }
                return (try segment.log.open(), start, segment.size, s.config.indexIntervalBytes, segment.baseOffset)
            }
            guard let snapshot else { return ByteBuffer() }
            if let batches = try Self.read(
                from: offset, in: snapshot.log, start: snapshot.start, end: snapshot.end, maxBytes: maxBytes,
                limitOffset: limitOffset, readAhead: snapshot.interval)
            {
                return batches
            }
            // The offset lies in a gap after this segment's last batch (possible only after a
            // damaged segment was truncated on recovery): the next segment holds what comes next.
            after = snapshot.base
        }
    }

    func locate(from offset: Int64, maxBytes: Int, limitOffset: Int64) throws -> StoredRecords? {
        let snapshot: (log: PosixFile, start: Int, end: Int, logEnd: Int64) = try state.withLock { s in
            try checkOpen(s)
            let logStart = s.logStartOffset
            guard offset >= logStart, offset <= s.logEndOffset else {
                throw StorageError.offsetOutOfRange(requested: offset, logStart: logStart, logEnd: s.logEndOffset)
            }
            let segment = s.segments[Self.segmentIndex(containing: offset, in: s.segments)]
            let start = segment.offsetIndex.position(atOrBefore: offset - segment.baseOffset)
            return (try segment.log.open(), start, segment.size, s.logEndOffset)
        }
        // Only batch headers are read; the chunk is small so large batches are not pulled in whole.
        var cursor = FrameCursor(file: snapshot.log, from: snapshot.start, end: snapshot.end, chunkSize: 16 * 1024)
        var first: BatchFrame?
        while let frame = try cursor.next() {
            if frame.lastOffset >= offset {
                first = frame
                break
            }
        }
        guard let first else {
            // At the log end there is nothing to return; before it, the next batch is in another segment.
            return offset == snapshot.logEnd ? StoredRecords(file: snapshot.log, position: snapshot.end, length: 0) : nil
        }
        guard first.lastOffset < limitOffset else { return StoredRecords(file: snapshot.log, position: first.position, length: 0) }
        var length = first.size
        while let frame = try cursor.next(), frame.lastOffset < limitOffset, length + frame.size <= maxBytes {
            length += frame.size
        }
        return StoredRecords(file: snapshot.log, position: first.position, length: length)
    }

    /// Whole batches from the one containing `offset`; nil when the segment ends before it.
    private static func read(
        from offset: Int64, in log: PosixFile, start: Int, end: Int, maxBytes: Int, limitOffset: Int64, readAhead: Int
    ) throws -> ByteBuffer? {
        let budget = max(0, min(maxBytes, end))
        // One read normally covers both the walk from the index position to the wanted batch
        // (about one index interval) and the batches to return.
        func chunkSize(at position: Int) -> Int {
            min(end - position, budget + readAhead + BatchFrame.headerSize)
        }
        var filePosition = start
        guard filePosition < end else { return nil }
        var chunk = try log.read(at: filePosition, count: chunkSize(at: filePosition))
        var cursor = 0
        var first: BatchFrame
        while true {
            guard filePosition + cursor < end else { return nil }
            guard let frame = try BatchFrame.read(chunk, at: cursor, position: filePosition + cursor) else {
                filePosition += cursor
                cursor = 0
                chunk = try log.read(at: filePosition, count: chunkSize(at: filePosition))
                guard chunk.readableBytes >= BatchFrame.headerSize else {
                    throw StorageError.corrupt("\(log.path): batch header cut short at \(filePosition)")
                }
                continue
            }
            if frame.lastOffset >= offset {
                first = frame
                break
            }
            cursor += frame.size
        }
        guard first.lastOffset < limitOffset else { return ByteBuffer() }
        if cursor + first.size > chunk.writerIndex {
            filePosition += cursor
            cursor = 0
            chunk = try log.read(at: filePosition, count: min(end - filePosition, max(first.size, budget)))
            guard chunk.readableBytes >= first.size else {
                throw StorageError.corrupt("\(log.path): batch at \(filePosition) cut short")
            }
        }
        var length = first.size
        while let frame = try BatchFrame.read(chunk, at: cursor + length, position: filePosition + cursor + length),
            frame.lastOffset < limitOffset, length + frame.size <= maxBytes,
            cursor + length + frame.size <= chunk.writerIndex
        {
            length += frame.size
        }
        return chunk.getSlice(at: cursor, length: length)!
    }

    /// Unlinks segments already taken out of `segments`. A pending sync of one is dropped: its
    /// name is gone, so it could only be reopened to fail, and its data no longer matters.
    static func remove(_ removed: ArraySlice<FileSegment>, from s: inout State) throws {
        s.unsynced.removeAll { file in removed.contains { $0.log === file } }
        for segment in removed { try segment.removeFiles() }
    }

    static func segmentIndex(containing offset: Int64, in segments: [FileSegment]) -> Int {
        var lo = 0
        var hi = segments.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if segments[mid].baseOffset <= offset { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }

    // MARK: Timestamps

    func offset(forTimestamp timestamp: Int64) throws -> (offset: Int64, timestamp: Int64)? {
        let snapshot: (log: PosixFile, start: Int, end: Int, logStart: Int64)? = try state.withLock { s in
            try checkOpen(s)
            // Segments before the first one whose maximum reaches `timestamp` cannot hold the answer.
            guard let segment = s.segments.first(where: { $0.maxTimestamp >= timestamp }) else { return nil }
            let relative = segment.timeIndex.relativeOffset(below: timestamp).map(Int64.init) ?? 0
            return (try segment.log.open(), segment.offsetIndex.position(atOrBefore: relative), segment.size, s.logStartOffset)
        }
        guard let snapshot else { return nil }
        var cursor = FrameCursor(file: snapshot.log, from: snapshot.start, end: snapshot.end)
        while let frame = try cursor.next() {
            if frame.maxTimestamp >= timestamp && frame.lastOffset >= snapshot.logStart {
                return (max(frame.baseOffset, snapshot.logStart), frame.maxTimestamp)
            }
        }
        return nil
    }

    func maxTimestamp() -> (offset: Int64, timestamp: Int64)? {
        state.withLock { s in
            var best: (offset: Int64, timestamp: Int64)?
            for segment in s.segments where segment.maxTimestamp >= 0 {
                if best == nil || segment.maxTimestamp > best!.timestamp {
                    best = (segment.offsetOfMaxTimestamp, segment.maxTimestamp)
                }
            }
            return best
        }
    }

    // MARK: Retention

    func deleteSegments(below offset: Int64) throws -> Int {
        try state.withLock { s in
            guard s.isOpen else { return 0 }
            // Segment i is entirely below `offset` when the next one starts at or before it.
            var count = 0
            while count + 1 < s.segments.count && s.segments[count + 1].baseOffset <= offset { count += 1 }
            guard count > 0 else { return 0 }
            let removed = s.segments.prefix(count)
            s.segments.removeFirst(count)
            try Self.remove(removed, from: &s)
            return count
        }
    }

    func enforceRetention(nowMs: Int64) {
        do {
            try state.withLock { s in
                guard s.isOpen else { return }
                let last = s.segments.count - 1
                if SegmentPolicy.activeSegmentAged(
                    activeSize: s.segments[last].size, firstAppendMs: s.segments[last].firstAppendMs, config: s.config,
                    nowMs: nowMs)
                {
                    try roll(&s, nowMs: nowMs)
                }
                let stats = s.segments.map {
                    SegmentPolicy.Stats(sizeInBytes: $0.size, maxTimestamp: $0.maxTimestamp, lastAppendMs: $0.lastAppendMs)
                }
                let count = SegmentPolicy.segmentsToDelete(stats, config: s.config, nowMs: nowMs)
                guard count > 0 else { return }
                if count == s.segments.count { try roll(&s, nowMs: nowMs) }
                let removed = s.segments.prefix(count)
                s.segments.removeFirst(count)
                try Self.remove(removed, from: &s)
                runtime.logger.info(
                    "deleted segments beyond retention",
                    metadata: [
                        "partition": "\(topic)-\(partition)", "segments": "\(count)",
                        "logStartOffset": "\(s.segments[0].baseOffset)",
                    ])
            }
        } catch {
            runtime.logger.error("retention failed", metadata: ["partition": "\(topic)-\(partition)", "error": "\(error)"])
        }
    }
}
