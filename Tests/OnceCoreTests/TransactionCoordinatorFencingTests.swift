import OnceCore
import Testing

/// Zombies, KIP-360 bumps, epoch exhaustion and marker retries: the coordinator rules that keep
/// two instances of one transactional id from ever holding the same epoch.
@Suite("Transaction coordinator fencing")
struct TransactionCoordinatorFencingTests {
    typealias Fixture = TransactionCoordinatorTests.Fixture
    static let p0 = TopicPartitionKey("out", 0)

    @Test("a new instance's bump fences the old instance's KIP-360 bump instead of sharing its epoch")
    func zombieBumpAfterNewInstance() {
        var f = Fixture()
        let old = f.initId()
        let new = f.initId()
        #expect(new.producerId == old.producerId && new.producerEpoch == old.producerEpoch + 1)
        // The old instance, after an abortable error, bumps its own epoch (P, E).
        let zombie = f.initId(expected: (old.producerId, old.producerEpoch))
        #expect(zombie.failure == .producerFenced)
        #expect(zombie.producerEpoch == -1)
        #expect(f.add(new.producerId, new.producerEpoch, [Self.p0]).failure == nil, "the new instance carries on")
    }

    @Test("after a timeout fence, the timed-out producer's KIP-360 bump is fenced")
    func zombieBumpAfterTimeout() {
        var f = Fixture()
        let first = f.initId(timeout: 1_000)
        _ = f.add(first.producerId, first.producerEpoch, [Self.p0])
        _ = f.c.timeoutsChecked(now: f.now + 1_000)
        _ = f.c.markersWritten(transactionalId: "tx", now: f.now + 1_000)
        #expect(f.initId(expected: (first.producerId, first.producerEpoch)).failure == .producerFenced)
    }

    @Test("a zombie's bump does not abort the new instance's open transaction")
    func zombieBumpDuringNewTransaction() {
        var f = Fixture()
        let old = f.initId()
        let new = f.initId()
        _ = f.add(new.producerId, new.producerEpoch, [Self.p0])
        let zombie = f.initId(expected: (old.producerId, old.producerEpoch))
        #expect(zombie.failure == .producerFenced)
        #expect(zombie.actions.isEmpty)
        #expect(f.state == .ongoing)
    }

    @Test("a producer's own bump, retried after a lost answer, gets the same epoch; only then")
    func ownBumpRetried() {
        var f = Fixture()
        let first = f.initId()
        let bumped = f.initId(expected: (first.producerId, first.producerEpoch))
        let retried = f.initId(expected: (first.producerId, first.producerEpoch))
        #expect(retried.failure == nil)
        #expect(retried.producerId == bumped.producerId && retried.producerEpoch == bumped.producerEpoch)
        #expect(retried.actions.isEmpty, "a retry changes nothing")
        // Once another instance bumps, the remembered epoch is gone.
        _ = f.initId()
        #expect(f.initId(expected: (first.producerId, first.producerEpoch)).failure == .producerFenced)
    }

    @Test("a timeout at the last usable epoch still bumps, fencing the producer; the next init rolls the id")
    func exhaustionOnTimeout() {
        var c = TransactionCoordinator()
        let meta = TransactionMetadata(
            transactionalId: "tx", producerId: 5, producerEpoch: Int16.max - 1, timeoutMs: 1_000, state: .ongoing,
            partitions: [Self.p0], startTimestamp: 0, lastUpdateTimestamp: 0)
        _ = c.recover([meta])
        let timedOut = c.timeoutsChecked(now: 1_000)
        #expect(timedOut.actions.contains(.writeMarkers(
            transactionalId: "tx", producerId: 5, producerEpoch: Int16.max, commit: false, partitions: [Self.p0])))
        _ = c.markersWritten(transactionalId: "tx", now: 1_000)
        #expect(c.addPartitionsReceived(
            transactionalId: "tx", producerId: 5, producerEpoch: Int16.max - 1, partitions: [Self.p0], now: 1_001
        ).failure == .producerFenced, "the timed-out producer cannot start a new transaction")
        #expect(c.initProducerIdReceived(
            transactionalId: "tx", timeoutMs: 1_000, expectedProducerId: 5, expectedProducerEpoch: Int16.max - 1, now: 1_002,
            newProducerId: { 6 }).failure == .producerFenced)
        let fresh = c.initProducerIdReceived(transactionalId: "tx", timeoutMs: 1_000, now: 1_003, newProducerId: { 6 })
        #expect(fresh.failure == nil)
        #expect(fresh.producerId == 6 && fresh.producerEpoch == 0)
    }

    @Test("an own bump at the last usable epoch rolls the id, and its retry gets the same new id")
    func exhaustionOnOwnBump() {
        var c = TransactionCoordinator()
        _ = c.recover([TransactionMetadata(
            transactionalId: "tx", producerId: 5, producerEpoch: Int16.max - 1, timeoutMs: 1_000, state: .completeAbort,
            lastUpdateTimestamp: 0)])
        var next: Int64 = 9
        let bump = { (c: inout TransactionCoordinator) in
            c.initProducerIdReceived(
                transactionalId: "tx", timeoutMs: 1_000, expectedProducerId: 5, expectedProducerEpoch: Int16.max - 1, now: 1,
                newProducerId: { defer { next += 1 }; return next })
        }
        let first = bump(&c)
        #expect(first.producerId == 9 && first.producerEpoch == 0)
        let retried = bump(&c)
        #expect(retried.failure == nil)
        #expect(retried.producerId == 9 && retried.producerEpoch == 0)
    }

    @Test("a prepared transaction whose markers were not written gets them again from the periodic check")
    func markerRetry() {
        var f = Fixture()
        let pid = f.initId().producerId
        _ = f.add(pid, 0, [Self.p0])
        _ = f.end(pid, 0, commit: true)
        let retryAt = f.now + f.c.config.markerRetryMs
        #expect(!f.c.timeoutsChecked(now: retryAt - 1).actions.contains { if case .writeMarkers = $0 { true } else { false } })
        let retry = f.c.timeoutsChecked(now: retryAt)
        #expect(retry.actions == [.writeMarkers(transactionalId: "tx", producerId: pid, producerEpoch: 0, commit: true, partitions: [Self.p0])])
        #expect(f.c.awaitsMarkers(transactionalId: "tx", producerId: pid, producerEpoch: 0, commit: true))
        _ = f.c.markersWritten(transactionalId: "tx", now: retryAt)
        #expect(!f.c.awaitsMarkers(transactionalId: "tx", producerId: pid, producerEpoch: 0, commit: true),
                "a late copy of the markers must not be written into the producer's next transaction")
    }

    @Test("a finished transaction keeps its start time")
    func startTimeKept() {
        var f = Fixture()
        let pid = f.initId().producerId
        _ = f.add(pid, 0, [Self.p0])
        _ = f.end(pid, 0, commit: false)
        _ = f.c.markersWritten(transactionalId: "tx", now: f.now + 10)
        #expect(f.c.transactions["tx"]?.state == .completeAbort)
        #expect(f.c.transactions["tx"]?.startTimestamp == f.now)
    }

    @Test("verification by transactional id: an id the producer does not belong to is INVALID_PRODUCER_ID_MAPPING")
    func verifyWithTransactionalId() {
        var f = Fixture()
        let pid = f.initId().producerId
        _ = f.add(pid, 0, [Self.p0])
        #expect(f.c.verify(transactionalId: "tx", producerId: pid, producerEpoch: 0, partition: Self.p0) == nil)
        #expect(f.c.verify(transactionalId: "unknown", producerId: pid, producerEpoch: 0, partition: Self.p0) == .invalidProducerIdMapping)
        _ = f.initId("other")
        #expect(f.c.verify(transactionalId: "other", producerId: pid, producerEpoch: 0, partition: Self.p0) == .invalidProducerIdMapping)
    }
}
