import KafkaProtocol
import NIOCore
import OnceCore
import OnceStorage
import Synchronization

/// One partition of a simulated broker over the simulated database, promising what
/// `PostgresPartitionLog` promises (that class is bound to the libpq committer thread, so this is
/// a model of it, kept to its contract): an append is assigned its offsets at once, kept in a
/// memory cache and queued for the broker's commit round; the high watermark is the committed
/// end; a round that fails keeps its batches queued and hears "outcome unknown"; only a lost lease
/// drops the queue and fences the partition, which then refuses appends and reads.
final class SimulatedDatabaseLog: PartitionLog, @unchecked Sendable {
    let topic: String
    let partition: Int32
    let cache: MemoryPartitionLog
    private weak var storage: SimulatedClusterStorage?

    struct State {
        var pending: [SimulatedDatabase.StoredBatch] = []
        var committedEnd: Int64
        var leaderEpoch: Int32
        var fenced = false
        var deleted = false
        var waiters: [(end: Int64, done: @Sendable (Result<Void, any Error>) -> Void)] = []
    }
    private let state: Mutex<State>

    init(topic: String, partition: Int32, cache: MemoryPartitionLog, leaderEpoch: Int32, storage: SimulatedClusterStorage) {
        self.topic = topic
        self.partition = partition
        self.cache = cache
        self.storage = storage
        state = Mutex(State(committedEnd: cache.logEndOffset, leaderEpoch: leaderEpoch))
    }

    var key: TopicPartitionKey { TopicPartitionKey(topic, partition) }
    var leaderEpoch: Int32 { state.withLock { $0.leaderEpoch } }
    var isFenced: Bool { state.withLock { $0.fenced } }
    var logStartOffset: Int64 { cache.logStartOffset }
    var logEndOffset: Int64 { cache.logEndOffset }
    var highWatermark: Int64 { state.withLock { $0.committedEnd } }
    var sizeInBytes: Int64 { cache.sizeInBytes }

    private var notLeader: StorageError { .notLeader("\(topic)-\(partition): another broker holds the lease") }

    func append(_ batches: ByteBuffer) throws -> AppendResult {
        let connected = storage?.isConnected ?? false
        let result: AppendResult = try state.withLock { s in
            if s.deleted { throw StorageError.unknownTopic(topic) }
            if s.fenced { throw notLeader }
            guard connected else { throw StorageError.io("simulated database unreachable") }
            let result = try cache.append(Self.stamping(batches, leaderEpoch: s.leaderEpoch))
            let stored = try cache.read(from: result.baseOffset, maxBytes: .max, limitOffset: .max)
            var position = stored.readerIndex
            while position < stored.writerIndex {
                let header = try RecordBatchHeader(reading: stored, at: position)
                s.pending.append(.init(
                    baseOffset: header.baseOffset, lastOffset: header.lastOffset,
                    bytes: stored.getBytes(at: position, length: header.totalSize)!))
                position += header.totalSize
            }
            return result
        }
        storage?.markDirty(self)
        return result
    }

    /// The leader epoch in every batch header, as Kafka's leader and the postgres engine write it.
    static func stamping(_ batches: ByteBuffer, leaderEpoch: Int32) throws -> ByteBuffer {
        var stamped = batches
        for frame in try BatchFrame.frames(of: batches) {
            stamped.setInteger(leaderEpoch, at: batches.readerIndex + frame.position + 12)
        }
        return stamped
    }

    func pendingForCommit() -> (epoch: Int32, batches: [SimulatedDatabase.StoredBatch]) {
        state.withLock { s in (s.leaderEpoch, s.fenced || s.deleted ? [] : s.pending) }
    }

    var hasPending: Bool { state.withLock { !$0.pending.isEmpty && !$0.fenced && !$0.deleted } }

    func committed(upTo end: Int64) {
        let ready = state.withLock { s -> [@Sendable (Result<Void, any Error>) -> Void] in
            s.pending.removeAll { $0.lastOffset < end }
            s.committedEnd = max(s.committedEnd, min(end, cache.logEndOffset))
            let committedEnd = s.committedEnd
            let ready = s.waiters.filter { $0.end <= committedEnd }.map(\.done)
            s.waiters.removeAll { $0.end <= committedEnd }
            return ready
        }
        for done in ready { done(.success(())) }
    }

    func failWaiters(_ error: any Error) {
        let failed = state.withLock { s in
            defer { s.waiters.removeAll() }
            return s.waiters.map(\.done)
        }
        for done in failed { done(.failure(error)) }
    }

    func fence() {
        state.withLock { s in
            s.fenced = true
            s.pending.removeAll()
        }
        failWaiters(notLeader)
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

    func whenDurable(upTo offset: Int64, _ done: @escaping @Sendable (Result<Void, any Error>) -> Void) {
        let immediate: Result<Void, any Error>? = state.withLock { s in
            if s.committedEnd >= offset { return .success(()) }
            if s.fenced { return .failure(notLeader) }
            if s.deleted { return .failure(StorageError.unknownTopic(topic)) }
            s.waiters.append((offset, done))
            return nil
        }
        if let immediate { done(immediate) } else { storage?.wantCommit() }
    }

    /// The postgres engine blocks here until its committer thread commits; a simulated broker
    /// has no second thread to wait for, so the round runs now, in this job.
    func sync() throws {
        let end = logEndOffset
        guard highWatermark < end else { return }
        try storage?.commitNow()
        if isFenced { throw notLeader }
        if highWatermark < end { throw StorageError.outcomeUnknown("\(topic)-\(partition): not committed") }
    }

    func read(from offset: Int64, maxBytes: Int, limitOffset: Int64) throws -> ByteBuffer {
        if isFenced { throw notLeader }
        return try cache.read(from: offset, maxBytes: maxBytes, limitOffset: limitOffset)
    }

    func locate(from offset: Int64, maxBytes: Int, limitOffset: Int64) throws -> StoredRecords? { nil }

    func offset(forTimestamp timestamp: Int64) throws -> (offset: Int64, timestamp: Int64)? {
        try cache.offset(forTimestamp: timestamp)
    }

    func maxTimestamp() -> (offset: Int64, timestamp: Int64)? { cache.maxTimestamp() }

    func deleteSegments(below offset: Int64) throws -> Int {
        let count = try cache.deleteSegments(below: offset)
        if count > 0 { storage?.trim(key, to: cache.logStartOffset) }
        return count
    }

    func advanceLogStart(to offset: Int64) throws -> Int64 {
        let start = try cache.advanceLogStart(to: offset)
        storage?.trim(key, to: start)
        return start
    }

    func enforceRetention(nowMs: Int64) {
        cache.enforceRetention(nowMs: nowMs)
    }
}
