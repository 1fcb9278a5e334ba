import KafkaProtocol
import NIOCore
import OnceStorage
import Synchronization

/// One partition over PostgreSQL. The leader owns its offsets, so an append is assigned them here
/// at once, kept in a memory cache (reads never wait for the database) and queued for the
/// broker-wide committer; the high watermark is the committed end, so nothing a lost commit could
/// take back is ever served. A round that fails keeps its batches queued and retries them after
/// checking what the database holds: a commit whose outcome was unknown is then either found or
/// written, never written twice, and every offset already handed to the producer-state table
/// stays true. Only a lost lease drops the queue: then the partition is fenced and refuses
/// everything, because its new leader owns those offsets.
final class PostgresPartitionLog: PartitionLog {
    let topic: String
    let partition: Int32
    let cache: MemoryPartitionLog
    private let committer: PostgresCommitter

    /// A batch appended but not yet committed, with the columns the table stores beside its bytes.
    struct PendingBatch {
        var header: RecordBatchHeader
        var bytes: [UInt8]
    }

    private struct State {
        var pending: [PendingBatch] = []
        var committedEnd: Int64
        var leaderEpoch: Int32
        var fenced = false
        var deleted = false
        var waiters: [(end: Int64, done: @Sendable (Result<Void, any Error>) -> Void)] = []
    }
    private let state: Mutex<State>

    init(topic: String, partition: Int32, cache: MemoryPartitionLog, leaderEpoch: Int32, committer: PostgresCommitter) {
        self.topic = topic
        self.partition = partition
        self.cache = cache
        self.committer = committer
        self.state = Mutex(State(committedEnd: cache.logEndOffset, leaderEpoch: leaderEpoch))
    }

    /// The lease's epoch this broker writes under.
    var leaderEpoch: Int32 { state.withLock { $0.leaderEpoch } }
    var isFenced: Bool { state.withLock { $0.fenced } }

    var logStartOffset: Int64 { cache.logStartOffset }
    var logEndOffset: Int64 { cache.logEndOffset }
    var highWatermark: Int64 { state.withLock { $0.committedEnd } }
    var sizeInBytes: Int64 { cache.sizeInBytes }

    func append(_ batches: ByteBuffer) throws -> AppendResult {
        let result: AppendResult = try state.withLock { s in
            if s.deleted { throw StorageError.unknownTopic(topic) }
            if s.fenced { throw StorageError.notLeader("\(topic)-\(partition): another broker holds the lease") }
            // Refused while the database is away, so what waits for it stays bounded by what
            // was accepted before the failure showed.
            guard committer.isConnected else { throw StorageError.io("postgres unreachable") }
            let result = try cache.append(Self.stamping(batches, leaderEpoch: s.leaderEpoch))
            // The cache rewrote the base offsets; the stored form is what it holds now.
            let stored = try cache.read(from: result.baseOffset, maxBytes: .max, limitOffset: .max)
            var position = stored.readerIndex
            while position < stored.writerIndex {
                let header = try RecordBatchHeader(reading: stored, at: position)
                s.pending.append(PendingBatch(header: header, bytes: stored.getBytes(at: position, length: header.totalSize)!))
                position += header.totalSize
            }
            return result
        }
        committer.markDirty(self)
        return result
    }

    /// The batches with this leader's epoch in their headers, as Kafka's leader writes it: a
    /// consumer then learns from the data which leader wrote it and can truncate correctly after a
    /// change. The field lies before the CRC's range, so the checksum still holds.
    /// Framed first, as every engine frames an append, so a malformed one is refused with the
    /// storage error the others give before any byte of it is touched.
    static func stamping(_ batches: ByteBuffer, leaderEpoch: Int32) throws -> ByteBuffer {
        var stamped = batches
        for frame in try BatchFrame.frames(of: batches) {
            stamped.setInteger(leaderEpoch, at: batches.readerIndex + frame.position + 12)
        }
        return stamped
    }

    /// What the next round commits: the epoch it is conditional on and every queued batch.
    func pendingForCommit() -> (epoch: Int32, batches: [PendingBatch]) {
        state.withLock { s in (s.leaderEpoch, s.fenced || s.deleted ? [] : s.pending) }
    }

    var hasPending: Bool { state.withLock { !$0.pending.isEmpty && !$0.fenced && !$0.deleted } }

    /// Everything below `end` is in the database: it leaves the queue and becomes readable.
    func committed(upTo end: Int64) {
        let ready = state.withLock { s -> [@Sendable (Result<Void, any Error>) -> Void] in
            s.pending.removeAll { $0.header.lastOffset < end }
            s.committedEnd = max(s.committedEnd, min(end, cache.logEndOffset))
            let committedEnd = s.committedEnd
            let ready = s.waiters.filter { $0.end <= committedEnd }.map(\.done)
            s.waiters.removeAll { $0.end <= committedEnd }
            return ready
        }
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
        cache.markDeleted()
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

    /// A fenced partition serves no reads either: its new leader may have moved on, so a reader
    /// here is sent to look the leader up again (Fetch answers NOT_LEADER_OR_FOLLOWER).
    func read(from offset: Int64, maxBytes: Int, limitOffset: Int64) throws -> ByteBuffer {
        if isFenced { throw StorageError.notLeader("\(topic)-\(partition): another broker holds the lease") }
        return try cache.read(from: offset, maxBytes: maxBytes, limitOffset: limitOffset)
    }

    func offset(forTimestamp timestamp: Int64) throws -> (offset: Int64, timestamp: Int64)? {
        try cache.offset(forTimestamp: timestamp)
    }

    func maxTimestamp() -> (offset: Int64, timestamp: Int64)? { cache.maxTimestamp() }

    func deleteSegments(below offset: Int64) throws -> Int {
        let count = try cache.deleteSegments(below: offset)
        if count > 0 { enqueueTrim(to: cache.logStartOffset) }
        return count
    }

    /// DeleteRecords is acknowledged as durable, so this waits for the database.
    func advanceLogStart(to offset: Int64) throws -> Int64 {
        let before = cache.logStartOffset
        let start = try cache.advanceLogStart(to: offset)
        if start > before, !(try committer.run(trimStatement(to: start))) {
            fence()
            throw StorageError.notLeader("\(topic)-\(partition): lease moved; log start not advanced")
        }
        return start
    }

    /// Retention runs on the cache; the rows follow in the background, as losing that delete only
    /// means a restart finds the rows and retention deletes them again.
    func enforceRetention(nowMs: Int64) {
        let before = cache.logStartOffset
        cache.enforceRetention(nowMs: nowMs)
        let after = cache.logStartOffset
        if after > before { enqueueTrim(to: after) }
    }

    private func trimStatement(to start: Int64) -> @Sendable (PostgresConnection) throws -> Bool {
        PostgresLogStorage.trimStatement(topic, partition, start, holder: committer.nodeId, epoch: leaderEpoch)
    }

    /// In the background: a trim that finds the lease gone did nothing, and the new leader trims.
    private func enqueueTrim(to start: Int64) {
        let trim = trimStatement(to: start)
        committer.enqueue { c in _ = try trim(c) }
    }
}
