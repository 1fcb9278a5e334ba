import KafkaProtocol
import NIOCore
import OnceCore
import OnceStorage
import Synchronization

/// One partition over PostgreSQL. The leader owns its offsets, so an append is assigned them here
/// at once, kept in memory and queued for the broker-wide committer; the high watermark is the
/// committed end, so nothing a lost commit could take back is ever served. A round that fails
/// keeps its batches queued and retries them after checking what the database holds: a commit
/// whose outcome was unknown is then either found or written, never written twice, and every
/// offset already handed to the producer-state table stays true. Only a lost lease drops the
/// queue: then the partition is fenced and refuses everything, because its new leader owns those
/// offsets.
///
/// Memory holds only what it must: the batches not yet committed, the newest committed ones
/// within `cacheBytes` (a consumer at the tail reads without a query), and one summary per segment
/// for retention and timestamps. Older batches are read from the table, one query per read (see
/// `PostgresPartitionLog+Reads.swift`), so a partition's memory does not grow with its log and
/// gaining it reads no batch.
final class PostgresPartitionLog: PartitionLog {
    let topic: String
    let partition: Int32
    private let committer: PostgresCommitter
    let reader: PostgresConnectionThread
    let cacheBytes: Int
    let stats: PostgresCacheStats

    /// A batch appended but not yet committed, with the columns the table stores beside its bytes.
    struct PendingBatch {
        var header: RecordBatchHeader
        var bytes: [UInt8]
    }

    /// Where the log stands when a broker gains the partition: what the table says.
    struct Stored: Sendable {
        var logStart: Int64 = 0
        var logEnd: Int64 = 0
        var segments: [SegmentSummary] = []
    }

    struct State {
        var config: TopicConfig
        /// Never empty; the last is the active one.
        var segments: [SegmentSummary]
        /// Where DeleteRecords or a trim moved the log start; it can lie inside the first segment.
        var startFloor: Int64
        var logEnd: Int64
        var recent: RecentBatches
        var pending: [PendingBatch] = []
        var committedEnd: Int64
        var leaderEpoch: Int32
        var fenced = false
        var deleted = false
        var waiters: [(end: Int64, done: @Sendable (Result<Void, any Error>) -> Void)] = []
        /// Where the cleaner's last pass here ended, and when the earliest horizon it stamped
        /// passes. Not stored: a new leader's first pass starts over from the log start, due at
        /// once, as the file engine treats a checkpoint that predates horizons.
        var firstDirtyOffset: Int64 = 0
        var earliestDeleteHorizonMs: Int64 = .min

        var logStart: Int64 { max(segments[0].baseOffset, startFloor) }
    }
    let state: Mutex<State>
    /// Whom the cleaner tells of the abort markers it removes; held from the telling through the
    /// commit, as the other engines hold it through their swap.
    let abortMarkerRemoval = Mutex<(@Sendable ([CleaningPlan.AbortMarker]) -> Void)?>(nil)

    init(
        topic: String, partition: Int32, config: TopicConfig, stored: Stored = Stored(), leaderEpoch: Int32,
        committer: PostgresCommitter, reader: PostgresConnectionThread, cacheBytes: Int, stats: PostgresCacheStats
    ) {
        self.topic = topic
        self.partition = partition
        self.committer = committer
        self.reader = reader
        self.cacheBytes = cacheBytes
        self.stats = stats
        let segments = stored.segments.isEmpty ? [SegmentSummary(baseOffset: stored.logEnd)] : stored.segments
        self.state = Mutex(
            State(
                config: config, segments: segments, startFloor: stored.logStart, logEnd: stored.logEnd,
                recent: RecentBatches(start: stored.logEnd), committedEnd: stored.logEnd, leaderEpoch: leaderEpoch))
    }

    deinit {
        stats.cached(-state.withLock { $0.recent.bytes })
    }

    /// The lease's epoch this broker writes under.
    var leaderEpoch: Int32 { state.withLock { $0.leaderEpoch } }
    var isFenced: Bool { state.withLock { $0.fenced } }

    var logStartOffset: Int64 { state.withLock { $0.logStart } }
    var logEndOffset: Int64 { state.withLock { $0.logEnd } }
    var highWatermark: Int64 { state.withLock { $0.committedEnd } }
    var sizeInBytes: Int64 { state.withLock { s in s.segments.reduce(0) { $0 + Int64($1.size) } } }
    /// Bytes of batches this partition holds in memory.
    var cachedBytes: Int { state.withLock { $0.recent.bytes } }

    func updateConfig(_ config: TopicConfig) {
        state.withLock { $0.config = config }
    }

    func append(_ batches: ByteBuffer) throws -> AppendResult {
        let frames = try BatchFrame.frames(of: batches)
        let now = wallClockMillis()
        let (result, added) = try state.withLock { s -> (AppendResult, Int) in
            if s.deleted { throw StorageError.unknownTopic(topic) }
            if s.fenced { throw StorageError.notLeader("\(topic)-\(partition): another broker holds the lease") }
            // Refused while the database is away, so what waits for it stays bounded by what
            // was accepted before the failure showed.
            guard committer.isConnected else { throw StorageError.io("postgres unreachable") }
            let base = s.logEnd
            let lastOffset = base + frames.reduce(Int64(0)) { $0 + Int64($1.lastOffsetDelta) + 1 } - 1
            let active = s.segments[s.segments.count - 1]
            if SegmentPolicy.shouldRoll(
                activeSize: active.size, activeBaseOffset: active.baseOffset, firstAppendMs: active.firstAppendMs,
                incomingBytes: batches.readableBytes, incomingLastOffset: lastOffset, config: s.config, nowMs: now)
            {
                s.segments.append(SegmentSummary(baseOffset: base))
            }
            var next = base
            var added = 0
            for frame in frames {
                // The copy owns its bytes, so stamping it leaves the caller's buffer alone.
                var bytes = ByteBuffer(
                    bytes: batches.getSlice(at: batches.readerIndex + frame.position, length: frame.size)!.readableBytesView)
                bytes.setInteger(next, at: bytes.readerIndex, endianness: .big)
                // This leader's epoch, as Kafka's leader writes it: a consumer then learns from
                // the data which leader wrote it and can truncate correctly after a change. The
                // field lies before the CRC's range, so the checksum still holds.
                bytes.setInteger(s.leaderEpoch, at: bytes.readerIndex + 12)
                let header = try RecordBatchHeader(reading: bytes, at: bytes.readerIndex)
                s.recent.append(.init(
                    baseOffset: next, lastOffset: header.lastOffset, maxTimestamp: header.maxTimestamp, bytes: bytes))
                s.pending.append(PendingBatch(header: header, bytes: Array(bytes.readableBytesView)))
                s.segments[s.segments.count - 1].add(
                    baseOffset: next, maxTimestamp: header.maxTimestamp, size: frame.size, nowMs: now)
                added += frame.size
                next = header.lastOffset + 1
            }
            s.logEnd = next
            return (AppendResult(baseOffset: base, lastOffset: next - 1, logEndOffset: next), added)
        }
        stats.cached(added)
        committer.markDirty(self)
        return result
    }

    /// What the next round commits: the epoch it is conditional on and every queued batch.
    func pendingForCommit() -> (epoch: Int32, batches: [PendingBatch]) {
        state.withLock { s in (s.leaderEpoch, s.fenced || s.deleted ? [] : s.pending) }
    }

    var hasPending: Bool { state.withLock { !$0.pending.isEmpty && !$0.fenced && !$0.deleted } }

    /// Everything below `end` is in the database: it leaves the queue, becomes readable, and may
    /// leave memory, as the table can now serve it.
    func committed(upTo end: Int64) {
        let (ready, freed) = state.withLock { s -> ([@Sendable (Result<Void, any Error>) -> Void], Int) in
            s.pending.removeAll { $0.header.lastOffset < end }
            s.committedEnd = max(s.committedEnd, min(end, s.logEnd))
            let committedEnd = s.committedEnd
            let freed = s.recent.evict(toFit: cacheBytes, committedEnd: committedEnd, logEnd: s.logEnd)
            let ready = s.waiters.filter { $0.end <= committedEnd }.map(\.done)
            s.waiters.removeAll { $0.end <= committedEnd }
            return (ready, freed)
        }
        stats.cached(-freed)
        for done in ready { done(.success(())) }
    }

    /// A round failed: its waiters get the error (the producer retries, and the retry is matched to
    /// the queued batch), while the batches stay queued for the next round.
    func failWaiters(_ error: any Error) {
        let failed = state.withLock { s in
            defer { s.waiters.removeAll() }
            return s.waiters.map(\.done)
        }
        for done in failed { done(.failure(error)) }
    }

    /// Another broker took the lease: nothing queued may land, and nothing more is accepted.
    func fence() {
        state.withLock { s in
            s.fenced = true
            s.pending.removeAll()
        }
        failWaiters(StorageError.notLeader("\(topic)-\(partition): another broker holds the lease"))
    }

    func markDeleted() {
        state.withLock { s in
            s.deleted = true
            s.pending.removeAll()
        }
        failWaiters(StorageError.unknownTopic(topic))
    }

    func waitDurable(upTo offset: Int64) async throws {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
            whenDurable(upTo: offset) { continuation.resume(with: $0) }
        }
    }

    /// Calls `done` once everything below `offset` is committed, or with the error that stopped it.
    func whenDurable(upTo offset: Int64, _ done: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        let immediate: Result<Void, any Error>? = state.withLock { s in
            if s.committedEnd >= offset { return .success(()) }
            if s.fenced { return .failure(StorageError.notLeader("\(topic)-\(partition): another broker holds the lease")) }
            if s.deleted { return .failure(StorageError.unknownTopic(topic)) }
            s.waiters.append((offset, done))
            return nil
        }
        if let immediate { done(immediate) } else { committer.wantCommit() }
    }

    /// Blocks until everything appended so far is committed: for the start-up recovery that
    /// runs before any client is served.
    func sync() throws {
        let end = logEndOffset
        let outcome = BlockingResult<Void>()
        whenDurable(upTo: end) { outcome.complete($0) }
        try outcome.wait()
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

    func deleteSegments(below offset: Int64) throws -> Int {
        let (count, start) = trimmed { s in SegmentPolicy.dropSegments(&s.segments, below: offset) }
        if count > 0 { enqueueTrim(to: start) }
        return count
    }

    /// DeleteRecords is acknowledged as durable, so this waits for the database.
    func advanceLogStart(to offset: Int64) throws -> Int64 {
        let before = logStartOffset
        let (_, start) = try trimmed { s in
            guard !s.deleted else { throw StorageError.unknownTopic(topic) }
            guard offset <= s.logEnd else {
                throw StorageError.offsetOutOfRange(requested: offset, logStart: s.logStart, logEnd: s.logEnd)
            }
            guard offset > s.logStart else { return }
            s.startFloor = offset
            SegmentPolicy.advanceStart(&s.segments, to: offset, logEnd: s.logEnd)
        }
        if start > before, !(try committer.run(trimStatement(to: start))) {
            fence()
            throw StorageError.notLeader("\(topic)-\(partition): lease moved; log start not advanced")
        }
        return start
    }

    /// Retention decides on the segment summaries, as the other engines decide on their segments;
    /// the rows follow in the background, as losing that delete only means a restart finds the
    /// rows and retention deletes them again.
    func enforceRetention(nowMs: Int64) {
        let (count, start) = trimmed { s in
            SegmentPolicy.applyRetention(&s.segments, logEnd: s.logEnd, config: s.config, nowMs: nowMs)
        }
        if count > 0 { enqueueTrim(to: start) }
    }

    private func trimStatement(to start: Int64) -> @Sendable (PostgresConnection) throws -> Bool {
        PostgresLogStorage.trimStatement(topic, partition, start, holder: committer.nodeId, epoch: leaderEpoch)
    }

    /// In the background: a trim that finds the lease gone did nothing, and the new leader trims.
    private func enqueueTrim(to start: Int64) {
        let trim = trimStatement(to: start)
        committer.enqueue { c in _ = try trim(c) }
    }

    /// Runs a change of the log start and drops the cached batches it left below the start.
    private func trimmed<R>(_ change: (inout State) throws -> R) rethrows -> (R, start: Int64) {
        let (result, start, freed) = try state.withLock { s in
            let result = try change(&s)
            let start = s.logStart
            return (result, start, s.recent.drop(below: start, logEnd: s.logEnd))
        }
        stats.cached(-freed)
        return (result, start)
    }
}
