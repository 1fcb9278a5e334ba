import Testing

@testable import OnceClient

@Suite struct PartitionSendQueueTests {
    private func queue(_ counts: [Int32]) -> PartitionSendQueue {
        var q = PartitionSendQueue()
        for (i, count) in counts.enumerated() { q.enqueue(id: i + 1, recordCount: count) }
        return q
    }

    @Test func sequencesFollowRecordCounts() {
        var q = queue([3, 2, 5])
        #expect(q.takeNext(maxInFlight: 5)?.baseSequence == 0)
        #expect(q.takeNext(maxInFlight: 5)?.baseSequence == 3)
        #expect(q.takeNext(maxInFlight: 5)?.baseSequence == 5)
        #expect(q.nextSequence == 10)
    }

    @Test func atMostMaxInFlightGoOut() {
        var q = queue([1, 1, 1, 1, 1, 1])
        for _ in 0..<5 { #expect(q.takeNext(maxInFlight: 5) != nil) }
        #expect(q.takeNext(maxInFlight: 5) == nil)
        q.acknowledged(id: 1)
        #expect(q.takeNext(maxInFlight: 5)?.id == 6)
    }

    @Test func aRetriedBatchKeepsItsSequenceAndGoesBeforeLaterOnes() {
        var q = queue([2, 2, 2])
        let first = q.takeNext(maxInFlight: 5)!
        let second = q.takeNext(maxInFlight: 5)!
        // The first fails (connection lost); the second, sent behind it, answers out of order.
        q.failedRetriably(id: first.id)
        #expect(q.isDraining)
        #expect(q.takeNext(maxInFlight: 5) == nil, "nothing goes out while an earlier batch is unresolved")
        q.failedRetriably(id: second.id)
        #expect(!q.isDraining)
        let resent = [q.takeNext(maxInFlight: 5)!, q.takeNext(maxInFlight: 5)!, q.takeNext(maxInFlight: 5)!]
        #expect(resent.map(\.id) == [1, 2, 3])
        #expect(resent.map(\.baseSequence) == [0, 2, 4])
        #expect(resent.map(\.attempts) == [2, 2, 1])
    }

    @Test func failuresAnsweredInAnyOrderStillResendInSequenceOrder() {
        var q = queue([1, 1, 1])
        let a = q.takeNext(maxInFlight: 5)!, b = q.takeNext(maxInFlight: 5)!, c = q.takeNext(maxInFlight: 5)!
        q.failedRetriably(id: c.id)
        q.failedRetriably(id: a.id)
        q.acknowledged(id: b.id)
        #expect(q.queued.map(\.id) == [1, 3])
        #expect(q.takeNext(maxInFlight: 5)?.baseSequence == 0)
    }

    @Test func onlyTheOldestUnacknowledgedBatchIsUnexplainedOutOfOrder() {
        var q = queue([1, 1])
        let a = q.takeNext(maxInFlight: 5)!, b = q.takeNext(maxInFlight: 5)!
        #expect(q.isOldestUnacknowledged(a.id))
        #expect(!q.isOldestUnacknowledged(b.id))
        q.acknowledged(id: a.id)
        #expect(q.isOldestUnacknowledged(b.id))
    }

    @Test func resetRenumbersUnacknowledgedBatchesFromZero() {
        var q = queue([4, 4, 4])
        let a = q.takeNext(maxInFlight: 5)!, b = q.takeNext(maxInFlight: 5)!
        q.acknowledged(id: a.id)
        q.failedRetriably(id: b.id)
        q.resetSequences()
        let resent = q.takeNext(maxInFlight: 5)!
        #expect(resent.id == b.id)
        #expect(resent.baseSequence == 0)
        #expect(q.takeNext(maxInFlight: 5)?.baseSequence == 4)
    }

    @Test func aPermanentFailureLeavesTheOthersQueued() {
        var q = queue([1, 1])
        let a = q.takeNext(maxInFlight: 5)!
        q.failedPermanently(id: a.id)
        #expect(q.unacknowledged == 1)
        #expect(!q.isDraining)
    }

    @Test func sequencesWrapAtInt32Max() {
        #expect(PartitionSendQueue.advance(Int32.max - 1, by: 1) == Int32.max)
        #expect(PartitionSendQueue.advance(Int32.max - 1, by: 3) == 1)
        #expect(PartitionSendQueue.advance(5, by: 10) == 15)
    }
}
