import Foundation
import Logging
import Metrics
import OnceStorage
import Synchronization

/// The one thread that talks to PostgreSQL. Every round gathers the queued batches of every
/// partition into one `once_append` call (one round trip, one transaction) and runs the queued
/// statements (topic changes, state documents, trims). libpq blocks, so this thread is ours:
/// never a NIO event loop or the Swift cooperative pool.
///
/// After any connection failure it reconnects with backoff and, before writing again, reads each
/// queued partition's committed end: a round whose COMMIT was lost in flight is then recognised
/// as landed (its batches leave the queue) or not (they are written again).
final class PostgresCommitter: @unchecked Sendable {
    typealias Statement = @Sendable (PostgresConnection) throws -> Void

    private let url: String
    private let schema: String
    let nodeId: Int32
    private let logger: Logger
    private let tuning: PostgresTuning
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var dirty: [ObjectIdentifier: PostgresPartitionLog] = [:]
    private var statements: [(run: Statement, done: (@Sendable ((any Error)?) -> Void)?)] = []
    private var stopping = false
    private var wanted = false
    private var stopped = false

    private let connected = Atomic<Bool>(false)
    /// Test fault: the next this many append rounds commit, then behave as if the connection broke
    /// before their answer arrived, the case only a look at the stored log ends can settle.
    package let losesAppendAnswers = Mutex(0)
    /// Round trips of every kind, and the append rounds among them: what a produce request costs.
    private let roundTrips = Counter(label: "once_postgres_round_trips_total")
    private let appendRounds = Counter(label: "once_postgres_append_round_trips_total")
    private let counts = Mutex<(roundTrips: Int, appendRounds: Int)>((0, 0))

    init(url: String, schema: String, nodeId: Int32, tuning: PostgresTuning, logger: Logger) {
        self.url = url
        self.schema = schema
        self.nodeId = nodeId
        self.tuning = tuning
        self.logger = logger
        linger = Mutex(tuning.commitLinger.timeInterval)
    }

    func start() {
        let thread = Thread { [self] in loop() }
        thread.name = "once-postgres-committer"
        thread.start()
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

    /// Queues a statement whose failure only costs work a later pass redoes.
    func enqueue(_ statement: @escaping Statement) {
        condition.lock()
        statements.append((statement, nil))
        condition.signal()
        condition.unlock()
    }

    /// Runs a statement on the committer thread and waits for it.
    func run<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) throws -> T {
        let outcome = BlockingResult<T>()
        let value = Mutex<T?>(nil)
        condition.lock()
        guard !stopped else {
            condition.unlock()
            throw StorageError.io("the postgres engine is closed")
        }
        statements.append(({ connection in
            let v = try body(connection)
            value.withLock { $0 = v }
        }, { error in
            if let error { outcome.complete(.failure(error)) } else { outcome.complete(.success(value.withLock { $0! })) }
        }))
        condition.signal()
        condition.unlock()
        return try outcome.wait()
    }

    /// Commits what is queued, then ends the thread.
    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        while !stopped { condition.wait() }
        condition.unlock()
    }

    private func loop() {
        var connection: PostgresConnection?
        var mustResolve = true
        var backoff = tuning.reconnectBackoff
        var failedWhileStopping = 0
        while true {
            condition.lock()
            // A round starts when someone waits for durability or a statement is queued; appends
            // alone only arm the linger. So a produce request's appends to all its partitions,
            // made before its handler waits, go out in one round.
            while statements.isEmpty && !wanted && !stopping && isConnected {
                if dirty.isEmpty {
                    condition.wait()
                } else if !condition.wait(until: Date(timeIntervalSinceNow: linger.withLock { $0 })) {
                    break
                }
            }
            wanted = false
            if stopping && ((dirty.isEmpty && statements.isEmpty) || failedWhileStopping >= 3 || !isConnected) {
                let abandoned = statements
                statements = []
                stopped = true
                condition.broadcast()
                condition.unlock()
                for s in abandoned { s.done?(StorageError.io("the postgres engine is closed")) }
                return
            }
            let logs = Array(dirty.values)
            let batch = statements
            statements = []
            condition.unlock()

            var pendingStatements = batch[...]
            do {
                if connection == nil || connection!.isBroken {
                    connection = nil
                    connection = try PostgresConnection(url: url, schema: schema)
                    lastCounted = 0
                    mustResolve = true
                    connected.store(true, ordering: .releasing)
                    logger.info("postgres connected")
                }
                let c = connection!
                if mustResolve {
                    try resolve(logs, on: c)
                    mustResolve = false
                }
                while let s = pendingStatements.first {
                    do {
                        try s.run(c)
                        pendingStatements.removeFirst()
                        s.done?(nil)
                    } catch let error as StorageError {
                        pendingStatements.removeFirst()
                        s.done?(error)
                    } catch PostgresError.statement(let state, let message) {
                        pendingStatements.removeFirst()
                        s.done?(StorageError.io("postgres \(state): \(message)"))
                    }
                }
                mustResolve = try commit(logs, on: c)
                count(c)
                backoff = tuning.reconnectBackoff
            } catch {
                if let c = connection { count(c) }
                connection = nil
                connected.store(false, ordering: .releasing)
                logger.warning("postgres round failed; retrying", metadata: ["error": "\(error)"])
                // The queued batches stay queued and may still commit: their waiters hear
                // "unknown"; a statement that did not run simply failed.
                for log in logs { log.failWaiters(StorageError.outcomeUnknown("postgres unavailable: \(error)")) }
                for s in pendingStatements { s.done?(StorageError.io("postgres unavailable: \(error)")) }
                if stopping { failedWhileStopping += 1 }
                Thread.sleep(forTimeInterval: backoff.timeInterval)
                backoff = min(backoff * 2, tuning.reconnectBackoffMax)
            }
            condition.lock()
            for log in logs where !log.hasPending { dirty[ObjectIdentifier(log)] = nil }
            condition.unlock()
        }
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
    /// learn whether the last round's COMMIT landed.
    private func resolve(_ logs: [PostgresPartitionLog], on c: PostgresConnection) throws {
        let queued = logs.filter(\.hasPending)
        guard !queued.isEmpty else { return }
        let rows = try c.query(
            "SELECT topic, partition, log_end_offset FROM partition_state WHERE (topic, partition) IN "
                + "(SELECT * FROM unnest($1::text[], $2::int[]))",
            [.strings(queued.map(\.topic)), .int32s(queued.map(\.partition))])
        var ends: [String: Int64] = [:]
        for row in 0..<rows.count { ends["\(rows.text(row, 0))/\(rows.text(row, 1))"] = rows.int(row, 2) }
        for log in queued {
            if let end = ends["\(log.topic)/\(log.partition)"] { log.committed(upTo: end) }
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
