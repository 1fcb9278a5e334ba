import OnceCore
import Testing

@Suite("Transaction coordinator")
struct TransactionCoordinatorTests {
    typealias C = TransactionCoordinator
    static let p0 = TopicPartitionKey("out", 0)
    static let p1 = TopicPartitionKey("out", 1)

    /// A coordinator with ids handed out from 100 up.
    struct Fixture {
        var c = C()
        var nextId: Int64 = 100
        var now: Int64 = 1_000

        mutating func initId(_ id: String = "tx", timeout: Int32 = 60_000, expected: (Int64, Int16)? = nil) -> C.Outcome {
            var next = nextId
            defer { nextId = next }
            return c.initProducerIdReceived(
                transactionalId: id, timeoutMs: timeout, expectedProducerId: expected?.0 ?? -1,
                expectedProducerEpoch: expected?.1 ?? -1, now: now, newProducerId: { defer { next += 1 }; return next })
        }

        /// `version` 2 is a partition's implicit add (transactions V2); 0 is AddPartitionsToTxn.
        mutating func add(_ pid: Int64, _ epoch: Int16, _ partitions: [TopicPartitionKey], id: String = "tx", version: Int16 = 0)
            -> C.Outcome
        {
            c.addPartitionsReceived(
                transactionalId: id, producerId: pid, producerEpoch: epoch, partitions: partitions, transactionVersion: version,
                now: now)
        }

        /// `version` 2 is EndTxn v5 (transactions V2).
        mutating func end(_ pid: Int64, _ epoch: Int16, commit: Bool, id: String = "tx", version: Int16 = 0) -> C.Outcome {
            var next = nextId
            defer { nextId = next }
            return c.endTransactionReceived(
                transactionalId: id, producerId: pid, producerEpoch: epoch, commit: commit, transactionVersion: version, now: now,
                newProducerId: { defer { next += 1 }; return next })
        }

        var state: TransactionState? { c.transactions["tx"]?.state }
    }

    @Test("InitProducerId registers a new id at epoch 0 and persists it")
    func firstInit() {
        var f = Fixture()
        let o = f.initId()
        #expect(o.failure == nil)
        #expect(o.producerId == 100 && o.producerEpoch == 0)
        #expect(o.actions.count == 1)
        #expect(f.state == .empty)
    }

    @Test("a timeout above transaction.max.timeout.ms is INVALID_TRANSACTION_TIMEOUT")
    func invalidTimeout() {
        var f = Fixture()
        #expect(f.initId(timeout: 900_001).failure == .invalidTransactionTimeout)
        #expect(f.initId(timeout: 0).failure == .invalidTransactionTimeout)
        #expect(f.c.transactions.isEmpty)
    }

    @Test("each InitProducerId bumps the epoch and fences the previous producer")
    func fencing() {
        var f = Fixture()
        let first = f.initId()
        let second = f.initId()
        #expect(second.producerId == first.producerId)
        #expect(second.producerEpoch == 1)
        #expect(f.add(first.producerId, 0, [Self.p0]).failure == .producerFenced)
        #expect(f.end(first.producerId, 0, commit: true).failure == .producerFenced)
        #expect(f.c.verify(producerId: first.producerId, producerEpoch: 0, partition: Self.p0) == .producerFenced)
        #expect(f.add(second.producerId, 1, [Self.p0]).failure == nil)
    }

    @Test("epoch exhaustion rolls to a new producer id")
    func exhaustion() {
        var f = Fixture()
        var c = C()
        var next: Int64 = 7
        let meta = TransactionMetadata(
            transactionalId: "tx", producerId: 5, producerEpoch: Int16.max - 1, timeoutMs: 1000, state: .completeCommit,
            lastUpdateTimestamp: 0)
        _ = c.recover([meta])
        let o = c.initProducerIdReceived(transactionalId: "tx", timeoutMs: 1000, now: 1, newProducerId: { defer { next += 1 }; return next })
        #expect(o.producerId == 7 && o.producerEpoch == 0)
        #expect(c.verify(producerId: 5, producerEpoch: Int16.max - 1, partition: Self.p0) == .invalidProducerIdMapping)
        _ = f
    }

    @Test("commit: Ongoing -> PrepareCommit (persisted before markers) -> CompleteCommit")
    func commitFlow() {
        var f = Fixture()
        let pid = f.initId().producerId
        let added = f.add(pid, 0, [Self.p0, Self.p1])
        #expect(added.failure == nil)
        #expect(f.state == .ongoing)
        #expect(f.c.verify(producerId: pid, producerEpoch: 0, partition: Self.p0) == nil)
        #expect(f.c.verify(producerId: pid, producerEpoch: 0, partition: TopicPartitionKey("other", 0)) == .invalidTxnState)
        let end = f.end(pid, 0, commit: true)
        #expect(end.failure == nil)
        guard end.actions.count == 2, case .persist(let prepared) = end.actions[0],
            case .writeMarkers(_, let markerPid, let markerEpoch, let commit, let partitions) = end.actions[1]
        else {
            Issue.record("expected persist then markers, got \(end.actions)")
            return
        }
        #expect(prepared.state == .prepareCommit)
        #expect(markerPid == pid && markerEpoch == 0 && commit)
        #expect(partitions == [Self.p0, Self.p1])
        // While markers are in flight: retries and new work wait.
        #expect(f.end(pid, 0, commit: true).failure == .concurrentTransactions)
        #expect(f.end(pid, 0, commit: false).failure == .invalidTxnState)
        #expect(f.add(pid, 0, [Self.p0]).failure == .concurrentTransactions)
        #expect(f.initId().failure == .concurrentTransactions)
        let done = f.c.markersWritten(transactionalId: "tx", now: f.now)
        #expect(f.state == .completeCommit)
        #expect(done.actions.count == 1)
        // A retried EndTxn gets the same answer; the opposite one is refused.
        #expect(f.end(pid, 0, commit: true).failure == nil)
        #expect(f.end(pid, 0, commit: true).actions.isEmpty)
        #expect(f.end(pid, 0, commit: false).failure == .invalidTxnState)
        // The next transaction starts afresh.
        #expect(f.add(pid, 0, [Self.p1]).failure == nil)
        #expect(f.c.transactions["tx"]?.partitions == [Self.p1])
    }

    @Test("abort: Ongoing -> PrepareAbort -> CompleteAbort; commit after abort is refused")
    func abortFlow() {
        var f = Fixture()
        let pid = f.initId().producerId
        _ = f.add(pid, 0, [Self.p0])
        let end = f.end(pid, 0, commit: false)
        #expect(end.actions.contains(.writeMarkers(transactionalId: "tx", producerId: pid, producerEpoch: 0, commit: false, partitions: [Self.p0])))
        #expect(f.state == .prepareAbort)
        #expect(f.end(pid, 0, commit: true).failure == .invalidTxnState)
        #expect(f.end(pid, 0, commit: false).failure == .concurrentTransactions)
        _ = f.c.markersWritten(transactionalId: "tx", now: f.now)
        #expect(f.state == .completeAbort)
        #expect(f.end(pid, 0, commit: false).failure == nil)
        #expect(f.end(pid, 0, commit: true).failure == .invalidTxnState)
    }

    @Test("EndTxn with nothing open, or from a stranger, is refused")
    func endWithoutTransaction() {
        var f = Fixture()
        let pid = f.initId().producerId
        #expect(f.end(pid, 0, commit: true).failure == .invalidTxnState)
        #expect(f.end(pid + 1, 0, commit: true).failure == .invalidProducerIdMapping)
        #expect(f.end(pid, 0, commit: true, id: "unknown").failure == .invalidProducerIdMapping)
    }

    @Test("InitProducerId while a transaction is open aborts it with a bumped epoch first")
    func initAbortsOpenTransaction() {
        var f = Fixture()
        let pid = f.initId().producerId
        _ = f.add(pid, 0, [Self.p0])
        let o = f.initId()
        #expect(o.failure == .concurrentTransactions)
        #expect(o.actions.contains(.writeMarkers(transactionalId: "tx", producerId: pid, producerEpoch: 1, commit: false, partitions: [Self.p0])))
        #expect(f.state == .prepareAbort)
        _ = f.c.markersWritten(transactionalId: "tx", now: f.now)
        let retry = f.initId()
        #expect(retry.failure == nil)
        #expect(retry.producerEpoch == 2)
        #expect(f.add(pid, 1, [Self.p0]).failure == .producerFenced)
    }

    @Test("KIP-360: a retried InitProducerId with the previous id and epoch gets the current answer")
    func initRetry() {
        var f = Fixture()
        let first = f.initId()
        let second = f.initId(expected: (first.producerId, first.producerEpoch))
        #expect(second.producerEpoch == 1)
        let retried = f.initId(expected: (first.producerId, first.producerEpoch))
        #expect(retried.failure == nil)
        #expect(retried.producerEpoch == 1)
        #expect(f.initId(expected: (first.producerId, 7)).failure == .producerFenced)
    }

    @Test("an open transaction past its timeout is aborted with an epoch bump; idle ids expire")
    func timeouts() {
        var f = Fixture()
        let pid = f.initId(timeout: 5_000).producerId
        _ = f.add(pid, 0, [Self.p0])
        #expect(f.c.timeoutsChecked(now: f.now + 4_999).actions.isEmpty)
        let o = f.c.timeoutsChecked(now: f.now + 5_000)
        #expect(o.actions.contains(.writeMarkers(transactionalId: "tx", producerId: pid, producerEpoch: 1, commit: false, partitions: [Self.p0])))
        _ = f.c.markersWritten(transactionalId: "tx", now: f.now + 5_000)
        #expect(f.end(pid, 0, commit: true).failure == .producerFenced, "the abandoned producer is fenced")
        let expiry = f.c.timeoutsChecked(now: f.now + 5_000 + f.c.config.idExpirationMs)
        #expect(expiry.actions == [.remove(transactionalId: "tx")])
        #expect(f.c.transactions.isEmpty)
    }

    @Test("after a crash in a prepare state the markers are written again; the rest resumes as it was")
    func recovery() {
        var live = Fixture()
        let pid = live.initId().producerId
        _ = live.add(pid, 0, [Self.p0, Self.p1])
        let end = live.end(pid, 0, commit: true)
        guard case .persist(let durable) = end.actions[0] else { Issue.record("no persist"); return }
        var restarted = C()
        let resumed = restarted.recover([durable])
        #expect(resumed.actions == [.writeMarkers(transactionalId: "tx", producerId: pid, producerEpoch: 0, commit: true, partitions: [Self.p0, Self.p1])])
        _ = restarted.markersWritten(transactionalId: "tx", now: 2_000)
        #expect(restarted.transactions["tx"]?.state == .completeCommit)
        // Ongoing and complete states need nothing on recovery.
        var other = C()
        var ongoing = durable
        ongoing.state = .ongoing
        #expect(other.recover([ongoing]).actions.isEmpty)
        #expect(other.verify(producerId: pid, producerEpoch: 0, partition: Self.p0) == nil)
    }

    @Test("a crash after any durable step resumes from exactly that step", arguments: [true, false])
    func crashAtEachStep(commit: Bool) {
        var f = Fixture()
        var durable: [TransactionMetadata] = []
        func record(_ o: C.Outcome) {
            for case .persist(let txn) in o.actions { durable.append(txn) }
        }
        record(f.initId())
        let pid = f.c.transactions["tx"]!.producerId
        record(f.add(pid, 0, [Self.p0, Self.p1]))
        record(f.end(pid, 0, commit: commit))
        record(f.c.markersWritten(transactionalId: "tx", now: f.now))
        let expected: [TransactionState] = [.empty, .ongoing, commit ? .prepareCommit : .prepareAbort, commit ? .completeCommit : .completeAbort]
        #expect(durable.map(\.state) == expected)
        for (step, state) in expected.enumerated() {
            // Restart with the log as it stood after this step.
            var restarted = C()
            let resumed = restarted.recover([durable[step]])
            #expect(restarted.transactions["tx"]?.state == state)
            switch state {
            case .prepareCommit, .prepareAbort:
                // The markers are written again, and the transaction then completes.
                #expect(resumed.actions == [.writeMarkers(transactionalId: "tx", producerId: pid, producerEpoch: 0, commit: commit, partitions: [Self.p0, Self.p1])])
                _ = restarted.markersWritten(transactionalId: "tx", now: f.now)
                #expect(restarted.transactions["tx"]?.state == (commit ? .completeCommit : .completeAbort))
            case .ongoing:
                #expect(resumed.actions.isEmpty)
                // The producer carries on, or its timeout aborts it.
                #expect(restarted.verify(producerId: pid, producerEpoch: 0, partition: Self.p1) == nil)
                let timedOut = restarted.timeoutsChecked(now: f.now + 60_000)
                #expect(timedOut.actions.contains { if case .writeMarkers(_, _, 1, false, _) = $0 { true } else { false } })
            default:
                #expect(resumed.actions.isEmpty)
                #expect(restarted.addPartitionsReceived(
                    transactionalId: "tx", producerId: pid, producerEpoch: 0, partitions: [Self.p0], now: f.now).failure == nil)
            }
        }
    }

    @Test("metadata records round-trip")
    func encoding() throws {
        let meta = TransactionMetadata(
            transactionalId: "tx-é", producerId: 9, producerEpoch: 3, lastProducerId: 8, lastProducerEpoch: 2, timeoutMs: 1234,
            state: .prepareAbort, partitions: [Self.p0, Self.p1], startTimestamp: 55, lastUpdateTimestamp: 66)
        #expect(try TransactionMetadata(decoding: meta.encoded()) == meta)
        #expect(throws: (any Error).self) { try TransactionMetadata(decoding: Array(meta.encoded().dropLast())) }
    }
}
