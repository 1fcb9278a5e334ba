import Foundation
import Logging
import Metrics
import OnceStorage
import Synchronization

/// The one thread that writes to PostgreSQL. Every round gathers the queued batches of every
/// partition into one `once_append` call (one round trip, one transaction) and runs the queued
/// statements (topic changes, state documents, trims).
///
/// After any connection failure it reconnects with backoff and, before writing again, reads each
/// queued partition's committed end: a round whose COMMIT was lost in flight is then recognised
/// as landed (its batches leave the queue) or not (they are written again).
final class PostgresCommitter: PostgresConnectionThread, @unchecked Sendable {
    let nodeId: Int32
    private let tuning: PostgresTuning
    // Guarded by `condition`.
    private var dirty: [ObjectIdentifier: PostgresPartitionLog] = [:]
    private var wanted = false
    // Touched only on the thread.
    private var logs: [PostgresPartitionLog] = []
    private var mustResolve = true
    private var backoff: Duration
    private var failedWhileStopping = 0

    private let connected = Atomic<Bool>(false)
    /// Test fault: the next this many append rounds commit, then behave as if the connection broke
    /// before their answer arrived, the case only a look at the stored log ends can settle.
    package let losesAppendAnswers = Mutex(0)
    /// Round trips of every kind, and the append rounds among them: what a produce request costs.
    private let roundTrips = Counter(label: "once_postgres_round_trips_total")
    private let appendRounds = Counter(label: "once_postgres_append_round_trips_total")
    private let counts = Mutex<(roundTrips: Int, appendRounds: Int)>((0, 0))

    init(url: String, schema: String, nodeId: Int32, tuning: PostgresTuning, logger: Logger) {
        self.nodeId = nodeId
        self.tuning = tuning
        backoff = tuning.reconnectBackoff
        linger = Mutex(tuning.commitLinger.timeInterval)
        super.init(
            name: "once-postgres-committer", url: url, schema: schema, answerTimeout: tuning.requestTimeout,
            logger: logger)
    }

    var isConnected: Bool { connected.load(ordering: .acquiring) }
    var roundTripCount: Int { counts.withLock { $0.roundTrips } }
    var appendRoundCount: Int { counts.withLock { $0.appendRounds } }

    func markDirty(_ log: PostgresPartitionLog) {
        condition.lock()
        dirty[ObjectIdentifier(log)] = log
        if dirty.count == 1 { condition.signal() }
        condition.unlock()
    }

    /// How long appends nobody waits for yet may gather before they are committed anyway; tests
    /// that must see a round start only when asked set it longer.
    package let linger: Mutex<TimeInterval>

    /// Someone waits for a queued append: commit now.
    func wantCommit() {
        condition.lock()
        wanted = true
        condition.signal()
        condition.unlock()
    }

    /// A round starts when someone waits for durability or a statement is queued; appends alone
    /// only arm the linger. So a produce request's appends to all its partitions, made before its
    /// handler waits, go out in one round. Unconnected, it keeps trying.
    override func idleWake() -> Wake {
        if wanted || !isConnected { return .now }
        return dirty.isEmpty ? .onSignal : .after(linger.withLock { $0 })
    }

    /// Stopping commits what is queued first, unless the database stays out of reach.
    override func mayStop() -> Bool {
        (dirty.isEmpty && !hasQueuedJobs) || failedWhileStopping >= 3 || !isConnected
    }

    override func takeRound() {
        wanted = false
        logs = Array(dirty.values)
    }

    override func round(_ batch: [Queued]) {
        var pending = batch[...]
        do {
            let (c, opened) = try liveConnection()
            if opened {
                lastCounted = 0
                mustResolve = true
                connected.store(true, ordering: .releasing)
                logger.info("postgres connected")
            }
            if mustResolve {
                try resolve(logs, on: c)
                mustResolve = false
            }
            try runJobs(&pending, on: c)
            mustResolve = try commit(logs, on: c)
            count(c)
            backoff = tuning.reconnectBackoff
        } catch {
            if let c = connection { count(c) }
            dropConnection()
            connected.store(false, ordering: .releasing)
            logger.warning("postgres round failed; retrying", metadata: ["error": "\(error)"])
            // The queued batches stay queued and may still commit: their waiters hear
            // "unknown"; a statement that did not run simply failed.
            for log in logs { log.failWaiters(StorageError.outcomeUnknown("postgres unavailable: \(error)")) }
            for s in pending { s.done?(StorageError.io("postgres unavailable: \(error)")) }
            if stopping { failedWhileStopping += 1 }
            Thread.sleep(forTimeInterval: backoff.timeInterval)
            backoff = min(backoff * 2, tuning.reconnectBackoffMax)
        }
        condition.lock()
        for log in logs where !log.hasPending { dirty[ObjectIdentifier(log)] = nil }
        condition.unlock()
        logs = []
    }

    private var lastCounted = 0
    private func count(_ c: PostgresConnection) {
        let new = c.roundTrips - lastCounted
        lastCounted = c.roundTrips
        guard new > 0 else { return }
        roundTrips.increment(by: new)
        counts.withLock { $0.roundTrips += new }
    }

    /// Marks what the database already holds as committed: after a reconnect, the only way to
    /// learn whether the last round's COMMIT landed. The stored end says so only while this node
    /// still holds the lease at the log's epoch: once another broker took it, the end counts that
    /// broker's batches too, and trusting it would acknowledge queued batches that never landed.
    /// Such a partition is fenced instead; its producers retry at the new leader, whose
    /// sequences tell a batch that landed from one that did not.
    private func resolve(_ logs: [PostgresPartitionLog], on c: PostgresConnection) throws {
        let queued = logs.filter(\.hasPending)
        guard !queued.isEmpty else { return }
        let rows = try c.query(
            "SELECT s.topic, s.partition, s.log_end_offset, l.holder = $3 AND l.leader_epoch = e.epoch "
                + "FROM unnest($1::text[], $2::int[], $4::int[]) AS e(topic, partition, epoch) "
                + "JOIN partition_state s ON s.topic = e.topic AND s.partition = e.partition "
                + "LEFT JOIN partition_leases l ON l.topic = e.topic AND l.partition = e.partition",
            [.strings(queued.map(\.topic)), .int32s(queued.map(\.partition)), .int32(nodeId),
             .int32s(queued.map(\.leaderEpoch))])
        var ends: [String: (end: Int64, held: Bool)] = [:]
        for row in 0..<rows.count {
            ends["\(rows.text(row, 0))/\(rows.text(row, 1))"] = (rows.int(row, 2), rows.text(row, 3) == "t")
        }
        for log in queued {
            guard let stored = ends["\(log.topic)/\(log.partition)"] else { continue }
            if stored.held { log.committed(upTo: stored.end) } else { log.fence() }
        }
    }

    /// One append round. Returns whether the engine must look at the stored log ends before the
    /// next one.
    private func commit(_ logs: [PostgresPartitionLog], on c: PostgresConnection) throws -> Bool {
        var topics: [String] = [], parts: [Int32] = [], epochs: [Int32] = [], bases: [Int64] = [], lasts: [Int64] = []
        var maxTimestamps: [Int64] = [], pids: [Int64] = [], pepochs: [Int16] = [], txns: [Bool] = [], controls: [Bool] = []
        var data: [[UInt8]] = []
        var ends: [(PostgresPartitionLog, Int64)] = []
        for log in logs {
            let (epoch, batches) = log.pendingForCommit()
            guard let last = batches.last else { continue }
            for b in batches {
                topics.append(log.topic)
                parts.append(log.partition)
                epochs.append(epoch)
                bases.append(b.header.baseOffset)
                lasts.append(b.header.lastOffset)
                maxTimestamps.append(b.header.maxTimestamp)
                pids.append(b.header.producerId)
                pepochs.append(b.header.producerEpoch)
                txns.append(b.header.isTransactional)
                controls.append(b.header.isControl)
                data.append(b.bytes)
            }
            ends.append((log, last.header.lastOffset + 1))
        }
        guard !ends.isEmpty else { return false }
        do {
            try c.query(
                "SELECT once_append($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                [.int32(nodeId), .strings(topics), .int32s(parts), .int32s(epochs), .int64s(bases), .int64s(lasts),
                 .int64s(maxTimestamps), .int64s(pids), .int16s(pepochs), .bools(txns), .bools(controls), .datas(data)])
        } catch PostgresError.statement(let state, let message) where state == "ON001" {
            logger.warning("lease lost; fencing the partitions another broker took", metadata: ["detail": "\(message)"])
            try fenceLost(ends.map(\.0), on: c)
            return false
        } catch PostgresError.statement(let state, _) where state == "ON002" {
            return true
        }
        if losesAppendAnswers.withLock({ n in defer { n = max(0, n - 1) }; return n > 0 }) {
            throw PostgresError.connection("the answer to a committed round was lost (test fault)")
        }
        appendRounds.increment()
        counts.withLock { $0.appendRounds += 1 }
        for (log, end) in ends { log.committed(upTo: end) }
        return false
    }

    /// Fences every partition whose lease row no longer names this node at its epoch.
    private func fenceLost(_ logs: [PostgresPartitionLog], on c: PostgresConnection) throws {
        let rows = try c.query(
            "SELECT topic, partition, holder, leader_epoch FROM partition_leases WHERE (topic, partition) IN "
                + "(SELECT * FROM unnest($1::text[], $2::int[]))",
            [.strings(logs.map(\.topic)), .int32s(logs.map(\.partition))])
        var held: Set<String> = []
        for row in 0..<rows.count where Int32(rows.int(row, 2)) == nodeId {
            held.insert("\(rows.text(row, 0))/\(rows.text(row, 1))/\(rows.int(row, 3))")
        }
        for log in logs where !held.contains("\(log.topic)/\(log.partition)/\(log.leaderEpoch)") { log.fence() }
    }
}
