import OnceCore
import Testing

/// What a partition accepts from a producer in a transaction, and how a transaction's consumer
/// offsets meet plain commits: the rules Kafka applies at the partition and in the group.
@Suite("Transactional write rules")
struct TransactionalWriteRulesTests {
    typealias Table = ProducerStateTable
    static let batch = ProducerStateTableTests.batch

    @Test("a plain batch from a producer with an open transaction is INVALID_TXN_STATE")
    func plainBatchInsideTransaction() {
        var t = Table()
        var next: Int64 = 0
        #expect(ProducerStateTableTests.offer(&t, Self.batch(7, 0, 0, 2, true, 1000), nextOffset: &next) == .append)
        #expect(t.check(Self.batch(7, 0, 2, 1, false, 1000)) == .reject(.invalidTxnState))
        // A retry of the transactional batch is still a duplicate, checked first.
        if case .duplicate = t.check(Self.batch(7, 0, 0, 2, true, 1000)) {} else { Issue.record("expected a duplicate") }
        t.markerAppended(producerId: 7, producerEpoch: 0, commit: true, coordinatorEpoch: 0, offset: next, timestamp: 1000)
        #expect(t.check(Self.batch(7, 0, 2, 1, false, 1000)) == .append, "after the marker, plain writes are fine")
    }

    @Test("a verified batch that would open a transaction after a marker ended the verified one is refused")
    func verificationGuard() {
        var t = Table()
        var next: Int64 = 0
        // The producer's first transaction, verified and written.
        let first = t.verificationStarted(producerId: 7)
        #expect(t.check(Self.batch(7, 0, 0, 1, true, 1000), verification: first) == .append)
        t.batchAppended(Self.batch(7, 0, 0, 1, true, 1000), firstOffset: next, lastOffset: next)
        next += 1
        // A second batch is verified against the still-open transaction...
        let second = t.verificationStarted(producerId: 7)
        // ...but its COMMIT marker lands before the batch does.
        t.markerAppended(producerId: 7, producerEpoch: 0, commit: true, coordinatorEpoch: 0, offset: next, timestamp: 1000)
        #expect(t.check(Self.batch(7, 0, 1, 1, true, 1000), verification: second) == .reject(.invalidTxnState),
                "it would open a transaction no coordinator knows: a hanging transaction")
        // A fresh verification after the marker lets the producer's next transaction begin.
        let third = t.verificationStarted(producerId: 7)
        #expect(t.check(Self.batch(7, 0, 1, 1, true, 1000), verification: third) == .append)
    }

    static let g = "group"
    static let p = GroupPartition("in", 0)
    static func offset(_ value: Int64) -> CommittedOffset { CommittedOffset(offset: value, metadata: nil, commitTimestampMs: 0) }

    @Test("a transaction's offset written before a plain commit loses to it on COMMIT")
    func newestCommitWins() {
        var o = TransactionalOffsets()
        o.transactionalCommitted(producerId: 1, [.init(group: Self.g, partition: Self.p, offset: Self.offset(10), position: 5)])
        o.committed(group: Self.g, partition: Self.p, position: 6)
        #expect(o.pendingThatCanWin.isEmpty, "a snapshot need not keep what cannot win")
        #expect(o.markerWritten(producerId: 1, commit: true).isEmpty)
    }

    @Test("a transaction's offset written after the plain commit applies on COMMIT, never on ABORT")
    func newerTransactionalOffsetApplies() {
        var o = TransactionalOffsets()
        o.committed(group: Self.g, partition: Self.p, position: 3)
        o.transactionalCommitted(producerId: 1, [.init(group: Self.g, partition: Self.p, offset: Self.offset(10), position: 5)])
        o.transactionalCommitted(producerId: 2, [.init(group: Self.g, partition: Self.p, offset: Self.offset(11), position: 6)])
        #expect(o.unstablePartitions(group: Self.g) == [Self.p])
        #expect(o.markerWritten(producerId: 2, commit: false).isEmpty)
        #expect(o.markerWritten(producerId: 1, commit: true) == [Self.g: [Self.p: Self.offset(10)]])
        #expect(o.unstablePartitions(group: Self.g).isEmpty)
    }

    @Test("removing a partition's offset drops its undecided transactional offsets too")
    func removalDropsPending() {
        var o = TransactionalOffsets()
        o.transactionalCommitted(producerId: 1, [.init(group: Self.g, partition: Self.p, offset: Self.offset(10), position: 5)])
        o.removed(group: Self.g, partition: Self.p)
        #expect(o.markerWritten(producerId: 1, commit: true).isEmpty)
    }
}
