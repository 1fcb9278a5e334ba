import OnceCore
import Testing

/// Transactions V2 (KIP-890 part 2): partitions join on their first write, every end bumps the
/// epoch, and so nothing sent at an earlier transaction's epoch acts on a later one (KAFKA-17754).
@Suite("Transaction coordinator, transactions V2")
struct TransactionCoordinatorV2Tests {
    typealias Fixture = TransactionCoordinatorTests.Fixture
    static let p0 = TopicPartitionKey("out", 0)
    static let p1 = TopicPartitionKey("out", 1)

    /// A V2 transaction on p0 ended and its markers written; returns the identity before the end.
    static func finishedV2(_ f: inout Fixture, commit: Bool = true) -> (pid: Int64, epoch: Int16, end: TransactionCoordinator.Outcome) {
        let initial = f.initId()
        _ = f.add(initial.producerId, initial.producerEpoch, [p0], version: 2)
        let end = f.end(initial.producerId, initial.producerEpoch, commit: commit, version: 2)
        _ = f.c.markersWritten(transactionalId: "tx", now: f.now)
        return (initial.producerId, initial.producerEpoch, end)
    }

    @Test("an implicit add opens the transaction and records it as V2")
    func implicitAdd() {
        var f = Fixture()
        let initial = f.initId()
        #expect(f.add(initial.producerId, initial.producerEpoch, [Self.p0], version: 2).failure == nil)
        #expect(f.state == .ongoing)
        #expect(f.c.transactions["tx"]?.transactionVersion == 2)
        #expect(f.c.verify(producerId: initial.producerId, producerEpoch: initial.producerEpoch, partition: Self.p0) == nil)
    }

    @Test("a V2 end bumps the epoch, writes the markers at the bumped epoch and answers it")
    func endBumps() {
        var f = Fixture()
        let initial = f.initId()
        _ = f.add(initial.producerId, initial.producerEpoch, [Self.p0], version: 2)
        let end = f.end(initial.producerId, initial.producerEpoch, commit: true, version: 2)
        #expect(end.failure == nil)
        #expect(end.producerId == initial.producerId && end.producerEpoch == initial.producerEpoch + 1)
        #expect(end.actions.contains(.writeMarkers(
            transactionalId: "tx", producerId: initial.producerId, producerEpoch: initial.producerEpoch + 1, commit: true,
            partitions: [Self.p0])))
        _ = f.c.markersWritten(transactionalId: "tx", now: f.now)
        #expect(f.state == .completeCommit)
        #expect(f.c.transactions["tx"]?.producerEpoch == initial.producerEpoch + 1)
    }

    @Test("an abort bumps the epoch too")
    func abortBumps() {
        var f = Fixture()
        let done = Self.finishedV2(&f, commit: false)
        #expect(done.end.producerEpoch == done.epoch + 1)
        #expect(f.state == .completeAbort)
    }

    @Test("a V1 end keeps the epoch, as before")
    func v1EndKeepsEpoch() {
        var f = Fixture()
        let initial = f.initId()
        _ = f.add(initial.producerId, initial.producerEpoch, [Self.p0])
        let end = f.end(initial.producerId, initial.producerEpoch, commit: true)
        #expect(end.actions.contains(.writeMarkers(
            transactionalId: "tx", producerId: initial.producerId, producerEpoch: initial.producerEpoch, commit: true,
            partitions: [Self.p0])))
        _ = f.c.markersWritten(transactionalId: "tx", now: f.now)
        #expect(f.c.transactions["tx"]?.producerEpoch == initial.producerEpoch)
    }

    @Test("a retried V2 EndTxn (old epoch, same outcome) gets the same answer; the other outcome is INVALID_TXN_STATE")
    func retriedEnd() {
        var f = Fixture()
        let done = Self.finishedV2(&f)
        let retry = f.end(done.pid, done.epoch, commit: true, version: 2)
        #expect(retry.failure == nil)
        #expect(retry.actions.isEmpty)
        #expect(retry.producerId == done.pid && retry.producerEpoch == done.epoch + 1)
        #expect(f.end(done.pid, done.epoch, commit: false, version: 2).failure == .invalidTxnState)
    }

    @Test("a retry while the markers are still being written is CONCURRENT_TRANSACTIONS")
    func retryWhilePrepared() {
        var f = Fixture()
        let initial = f.initId()
        _ = f.add(initial.producerId, initial.producerEpoch, [Self.p0], version: 2)
        _ = f.end(initial.producerId, initial.producerEpoch, commit: true, version: 2)
        #expect(f.end(initial.producerId, initial.producerEpoch, commit: true, version: 2).failure == .concurrentTransactions)
    }

    @Test("KAFKA-17754: a delayed EndTxn of the previous transaction is fenced once the next one is open")
    func delayedEndFenced() {
        var f = Fixture()
        let done = Self.finishedV2(&f)
        let next = done.end.producerEpoch
        #expect(f.add(done.pid, next, [Self.p1], version: 2).failure == nil)
        // The first transaction's commit, held back in the network, arrives now.
        let delayed = f.end(done.pid, done.epoch, commit: true, version: 2)
        #expect(delayed.failure == .producerFenced)
        #expect(delayed.actions.isEmpty)
        #expect(f.state == .ongoing, "the open transaction is untouched")
        #expect(f.end(done.pid, next, commit: true, version: 2).failure == nil, "its own producer still commits it")
    }

    @Test("KAFKA-17754: a delayed write of the previous transaction is fenced by the coordinator")
    func delayedWriteFenced() {
        var f = Fixture()
        let done = Self.finishedV2(&f)
        #expect(f.add(done.pid, done.epoch, [Self.p1], version: 2).failure == .producerFenced)
        #expect(f.state == .completeCommit, "no transaction was opened for it")
        _ = f.add(done.pid, done.end.producerEpoch, [Self.p0], version: 2)
        #expect(f.c.verify(producerId: done.pid, producerEpoch: done.epoch, partition: Self.p0) == .producerFenced)
    }

    @Test("with V1 the same delayed EndTxn commits the next transaction (Kafka's V1 hole, kept for V1 clients)")
    func v1DelayedEndHole() {
        var f = Fixture()
        let initial = f.initId()
        _ = f.add(initial.producerId, initial.producerEpoch, [Self.p0])
        _ = f.end(initial.producerId, initial.producerEpoch, commit: true)
        _ = f.c.markersWritten(transactionalId: "tx", now: f.now)
        _ = f.add(initial.producerId, initial.producerEpoch, [Self.p1])
        let delayed = f.end(initial.producerId, initial.producerEpoch, commit: true)
        #expect(delayed.failure == nil)
        #expect(f.state == .prepareCommit, "one epoch for both transactions: the coordinator cannot tell them apart")
    }

    @Test("a same-epoch EndTxn on a finished V2 transaction is fenced: it would belong to the next transaction")
    func sameEpochAfterEnd() {
        var f = Fixture()
        let done = Self.finishedV2(&f)
        #expect(f.end(done.pid, done.end.producerEpoch, commit: true, version: 2).failure == .producerFenced)
    }

    @Test("the producer a timeout fenced cannot pass its EndTxn off as a retry")
    func timeoutFenceIsNotRetry() {
        var f = Fixture()
        let initial = f.initId(timeout: 1_000)
        _ = f.add(initial.producerId, initial.producerEpoch, [Self.p0], version: 2)
        _ = f.c.timeoutsChecked(now: f.now + 1_000)
        _ = f.c.markersWritten(transactionalId: "tx", now: f.now + 1_000)
        #expect(f.c.transactions["tx"]?.producerEpoch == initial.producerEpoch + 1)
        #expect(f.end(initial.producerId, initial.producerEpoch, commit: false, version: 2).failure == .producerFenced)
    }

    @Test("a V2 end at the last usable epoch marks at the last epoch and moves to a new producer id")
    func exhaustionRolls() {
        var f = Fixture()
        let meta = TransactionMetadata(
            transactionalId: "tx", producerId: 5, producerEpoch: Int16.max - 1, timeoutMs: 60_000, state: .ongoing,
            partitions: [Self.p0], startTimestamp: f.now, lastUpdateTimestamp: f.now, transactionVersion: 2)
        _ = f.c.recover([meta])
        let end = f.end(5, Int16.max - 1, commit: true, version: 2)
        #expect(end.failure == nil)
        #expect(end.producerId == f.nextId - 1 && end.producerEpoch == 0, "the answer names the new id")
        #expect(end.actions.contains(.writeMarkers(
            transactionalId: "tx", producerId: 5, producerEpoch: Int16.max, commit: true, partitions: [Self.p0])))
        #expect(f.c.transactions["tx"]?.nextProducerId == end.producerId, "durable before the markers")
        _ = f.c.markersWritten(transactionalId: "tx", now: f.now)
        let txn = f.c.transactions["tx"]
        #expect(txn?.producerId == end.producerId && txn?.producerEpoch == 0 && txn?.nextProducerId == -1)
        // A retry with the old id is recognised; the old id writes nothing any more.
        let retry = f.end(5, Int16.max - 1, commit: true, version: 2)
        #expect(retry.failure == nil && retry.producerId == end.producerId && retry.producerEpoch == 0)
        #expect(f.add(5, Int16.max - 1, [Self.p0], version: 2).failure == .invalidProducerIdMapping)
        #expect(f.add(end.producerId, 0, [Self.p0], version: 2).failure == nil)
    }

    @Test("a lost EndTxn answer, recovered by InitProducerId with the old epoch, continues at the bumped one")
    func lostAnswerReinit() {
        var f = Fixture()
        let done = Self.finishedV2(&f)
        let reinit = f.initId(expected: (done.pid, done.epoch))
        #expect(reinit.failure == nil)
        #expect(reinit.producerId == done.pid && reinit.producerEpoch == done.epoch + 1)
    }

    @Test("the transaction version and the rolled id survive the transaction log")
    func metadataRoundTrip() throws {
        let meta = TransactionMetadata(
            transactionalId: "tx", producerId: 5, producerEpoch: Int16.max, lastProducerId: 5, lastProducerEpoch: Int16.max - 1,
            timeoutMs: 60_000, state: .prepareCommit, partitions: [Self.p0], startTimestamp: 1, lastUpdateTimestamp: 2,
            transactionVersion: 2, nextProducerId: 77)
        #expect(try TransactionMetadata(decoding: meta.encoded()) == meta)
        // A coordinator recovering it finishes the markers and then rolls.
        var c = TransactionCoordinator()
        let recovered = c.recover([meta])
        #expect(recovered.actions == [.writeMarkers(
            transactionalId: "tx", producerId: 5, producerEpoch: Int16.max, commit: true, partitions: [Self.p0])])
        _ = c.markersWritten(transactionalId: "tx", now: 3)
        #expect(c.transactions["tx"]?.producerId == 77)
    }

    @Test("a record written before transactions V2 decodes as a V1 transaction")
    func v1RecordDecodes() throws {
        let meta = TransactionMetadata(
            transactionalId: "tx", producerId: 5, producerEpoch: 3, timeoutMs: 60_000, state: .ongoing,
            partitions: [Self.p0], startTimestamp: 1, lastUpdateTimestamp: 2, transactionVersion: 2, nextProducerId: 9)
        var bytes = meta.encoded()
        bytes[0] = 1
        bytes.removeLast(2 + 8)
        let decoded = try TransactionMetadata(decoding: bytes)
        #expect(decoded.transactionVersion == 0 && decoded.nextProducerId == -1)
        #expect(decoded.producerEpoch == 3 && decoded.partitions == [Self.p0])
    }
}
