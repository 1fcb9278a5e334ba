import NIOCore
import OnceCore
import Synchronization

/// A partition held in memory, for tests and the conformance suite. It keeps the file engine's
/// segment structure (roll by size and age, retention by whole segments) so both engines answer
/// the same questions the same way.
package final class MemoryPartitionLog: PartitionLog {
    package let topic: String
    package let partition: Int32

    struct StoredBatch {
        var baseOffset: Int64
        var lastOffset: Int64
        var maxTimestamp: Int64
        var bytes: ByteBuffer
    }

    struct Segment: TrimmableSegment {
        var baseOffset: Int64
        var batches: [StoredBatch] = []
        var size = 0
        var maxTimestamp: Int64 = -1
        var offsetOfMaxTimestamp: Int64 = -1
        var firstAppendMs: Int64?
        var lastAppendMs: Int64 = 0

        var stats: SegmentPolicy.Stats {
            .init(sizeInBytes: size, maxTimestamp: maxTimestamp, lastAppendMs: lastAppendMs)
        }
    }

    struct State {
        var config: TopicConfig
        var segments: [Segment]
        var logEndOffset: Int64 = 0
        /// Everything below survives a power cut.
        var durableOffset: Int64 = 0
        var deleted = false
        /// Where DeleteRecords moved the log start; it can lie inside the first segment.
        var startFloor: Int64 = 0
        /// Where the cleaner's last pass ended, and when the earliest horizon it stamped passes.
        var firstDirtyOffset: Int64 = 0
        var earliestDeleteHorizonMs: Int64 = .max

        var logStartOffset: Int64 { max(segments[0].baseOffset, startFloor) }
    }

    let state: Mutex<State>
    /// Whom the cleaner tells of the abort markers it removes. The lock is also the cleaner's
    /// gate: it is held from the telling through the swap, so a handler set meanwhile either hears
    /// of the markers or finds them already gone from the log.
    let abortMarkerRemoval = Mutex<(@Sendable ([CleaningPlan.AbortMarker]) -> Void)?>(nil)
    let flushPolicy: FlushPolicy
    private let clock: @Sendable () -> Int64

    /// - Parameter baseOffset: where the log starts; a log rebuilt from batches kept elsewhere (the
    ///   simulator's database) starts at its first stored batch.
    package init(
        topic: String, partition: Int32, config: TopicConfig, flushPolicy: FlushPolicy = .none, baseOffset: Int64 = 0,
        clock: @escaping @Sendable () -> Int64 = currentTimeMillis
    ) {
        self.topic = topic
        self.partition = partition
        self.flushPolicy = flushPolicy
        self.clock = clock
        var state = State(config: config, segments: [Segment(baseOffset: baseOffset)])
        state.logEndOffset = baseOffset
        state.durableOffset = baseOffset
        state.startFloor = baseOffset
        self.state = Mutex(state)
    }

    private init(topic: String, partition: Int32, flushPolicy: FlushPolicy, clock: @escaping @Sendable () -> Int64, state: State) {
        self.topic = topic
        self.partition = partition
        self.flushPolicy = flushPolicy
        self.clock = clock
        self.state = Mutex(state)
    }

    /// This partition as a power cut leaves it: whole batches below the last sync, and the first
    /// `writeback(n)` of the `n` batches after it. The active segment stays (possibly empty), as
    /// its file would.
    package func durablePart(writeback: (Int) -> Int) -> MemoryPartitionLog {
        var kept = state.withLock { $0 }
        let unsynced = kept.segments.flatMap(\.batches).filter { $0.lastOffset >= kept.durableOffset }
        let survivors = writeback(unsynced.count)
        if survivors > 0 { kept.durableOffset = unsynced[min(survivors, unsynced.count) - 1].lastOffset + 1 }
        for i in kept.segments.indices {
            kept.segments[i].batches.removeAll { $0.lastOffset >= kept.durableOffset }
            kept.segments[i].size = kept.segments[i].batches.reduce(0) { $0 + $1.bytes.readableBytes }
        }
        let lastSegment = kept.segments.lastIndex { $0.baseOffset <= kept.durableOffset } ?? 0
        kept.segments.removeSubrange((lastSegment + 1)...)
        kept.logEndOffset = kept.segments.last!.batches.last.map { $0.lastOffset + 1 } ?? kept.segments.last!.baseOffset
        kept.durableOffset = kept.logEndOffset
        kept.firstDirtyOffset = min(kept.firstDirtyOffset, kept.logEndOffset)
        return MemoryPartitionLog(topic: topic, partition: partition, flushPolicy: flushPolicy, clock: clock, state: kept)
    }

    package var logStartOffset: Int64 { state.withLock { $0.logStartOffset } }
    package var sizeInBytes: Int64 { state.withLock { s in s.segments.reduce(0) { $0 + Int64($1.size) } } }

    package func updateConfig(_ config: TopicConfig) {
        state.withLock { $0.config = config }
    }
    package var logEndOffset: Int64 { state.withLock { $0.logEndOffset } }

    package func markDeleted() {
        state.withLock { $0.deleted = true }
    }

    package func append(_ batches: ByteBuffer) throws -> AppendResult {
        let frames = try BatchFrame.frames(of: batches)
        let now = clock()
        return try state.withLock { s in
            guard !s.deleted else { throw StorageError.unknownTopic(topic) }
            let base = s.logEndOffset
            let lastOffset = base + frames.reduce(Int64(0)) { $0 + Int64($1.lastOffsetDelta) + 1 } - 1
            let last = s.segments.count - 1
            if SegmentPolicy.shouldRoll(
                activeSize: s.segments[last].size, activeBaseOffset: s.segments[last].baseOffset,
                firstAppendMs: s.segments[last].firstAppendMs,
                incomingBytes: batches.readableBytes, incomingLastOffset: lastOffset, config: s.config, nowMs: now)
            {
                s.segments.append(Segment(baseOffset: base))
            }
            var next = base
            var segment = s.segments.removeLast()
            for frame in frames {
                var bytes = batches.getSlice(at: batches.readerIndex + frame.position, length: frame.size)!
                // The copy owns its bytes, so rewriting the offset leaves the caller's buffer alone.
                bytes = ByteBuffer(bytes: bytes.readableBytesView)
                bytes.setInteger(next, at: bytes.readerIndex, endianness: .big)
                let stored = StoredBatch(
                    baseOffset: next, lastOffset: next + Int64(frame.lastOffsetDelta),
                    maxTimestamp: frame.maxTimestamp, bytes: bytes)
                if stored.maxTimestamp > segment.maxTimestamp {
                    segment.maxTimestamp = stored.maxTimestamp
                    segment.offsetOfMaxTimestamp = stored.baseOffset
                }
                segment.batches.append(stored)
                segment.size += frame.size
                next = stored.lastOffset + 1
            }
            if segment.firstAppendMs == nil { segment.firstAppendMs = now }
            segment.lastAppendMs = now
            s.segments.append(segment)
            s.logEndOffset = next
            return AppendResult(baseOffset: base, lastOffset: next - 1, logEndOffset: next)
        }
    }

    /// Under `always` the caller's wait is the sync, as one round of the file engine's group commit.
    package func waitDurable(upTo offset: Int64) async throws {
        if flushPolicy.acknowledgesOnlyDurableWrites { try sync() }
    }

    package func sync() throws {
        state.withLock { $0.durableOffset = $0.logEndOffset }
    }

    package var highWatermark: Int64 {
        state.withLock { flushPolicy.fetchableEnd(logEnd: $0.logEndOffset, durable: $0.durableOffset) }
    }

    package func read(from offset: Int64, maxBytes: Int, limitOffset: Int64) throws -> ByteBuffer {
        try state.withLock { s in
            let start = s.logStartOffset
            guard offset >= start, offset <= s.logEndOffset else {
                throw StorageError.offsetOutOfRange(requested: offset, logStart: start, logEnd: s.logEndOffset)
            }
            guard offset < s.logEndOffset else { return ByteBuffer() }
            // An offset compaction left in a gap reads on from the next batch, in a later segment
            // when the cleaner emptied the rest of this one.
            var index = Self.segmentIndex(containing: offset, in: s.segments)
            var lo = 0
            while true {
                var hi = s.segments[index].batches.count
                lo = 0
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if s.segments[index].batches[mid].lastOffset < offset { lo = mid + 1 } else { hi = mid }
                }
                guard lo == s.segments[index].batches.count, index + 1 < s.segments.count else { break }
                index += 1
            }
            let segment = s.segments[index]
            var out = ByteBuffer()
            for batch in segment.batches[lo...] {
                guard batch.lastOffset < limitOffset else { break }
                if out.readableBytes > 0 && out.readableBytes + batch.bytes.readableBytes > maxBytes { break }
                out.writeImmutableBuffer(batch.bytes)
            }
            return out
        }
    }

    package func offset(forTimestamp timestamp: Int64) throws -> (offset: Int64, timestamp: Int64)? {
        state.withLock { s in
            for segment in s.segments where segment.maxTimestamp >= timestamp {
                for batch in segment.batches where batch.maxTimestamp >= timestamp && batch.lastOffset >= s.logStartOffset {
                    return (max(batch.baseOffset, s.logStartOffset), batch.maxTimestamp)
                }
            }
            return nil
        }
    }

    package func maxTimestamp() -> (offset: Int64, timestamp: Int64)? {
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

    package func deleteSegments(below offset: Int64) throws -> Int {
        state.withLock { s in SegmentPolicy.dropSegments(&s.segments, below: offset) }
    }

    package func advanceLogStart(to offset: Int64) throws -> Int64 {
        try state.withLock { s in
            guard !s.deleted else { throw StorageError.unknownTopic(topic) }
            guard offset <= s.logEndOffset else {
                throw StorageError.offsetOutOfRange(requested: offset, logStart: s.logStartOffset, logEnd: s.logEndOffset)
            }
            guard offset > s.logStartOffset else { return s.logStartOffset }
            s.startFloor = offset
            SegmentPolicy.advanceStart(&s.segments, to: offset, logEnd: s.logEndOffset)
            return s.logStartOffset
        }
    }

    package func enforceRetention(nowMs: Int64) {
        state.withLock { s in SegmentPolicy.applyRetention(&s.segments, logEnd: s.logEndOffset, config: s.config, nowMs: nowMs) }
    }

    /// Segment count, for tests that check rolling.
    package var segmentCount: Int { state.withLock { $0.segments.count } }

    private static func segmentIndex(containing offset: Int64, in segments: [Segment]) -> Int {
        var lo = 0
        var hi = segments.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if segments[mid].baseOffset <= offset { lo = mid } else { hi = mid - 1 }
        }
        return lo
    }
}

extension MemoryPartitionLog.Segment {
    init(baseOffset: Int64) { self.baseOffset = baseOffset }
}
