import Testing

@testable import OnceStreams

@Suite struct CommitPolicyTests {
    let policy = CommitPolicy(maxRecords: 100, maxInterval: .milliseconds(50))
    let start = ContinuousClock.now

    @Test func nothingToCommitWithoutRecords() {
        #expect(!policy.shouldCommit(recordsInTransaction: 0, openedAt: start, now: start + .seconds(10)))
        #expect(!policy.shouldCommit(recordsInTransaction: 5, openedAt: nil, now: start))
    }

    @Test func commitsOnRecordCountOrAge() {
        #expect(!policy.shouldCommit(recordsInTransaction: 99, openedAt: start, now: start + .milliseconds(49)))
        #expect(policy.shouldCommit(recordsInTransaction: 100, openedAt: start, now: start))
        #expect(policy.shouldCommit(recordsInTransaction: 1, openedAt: start, now: start + .milliseconds(50)))
    }

    @Test func waitsNoLongerThanTheIntervalLeft() {
        #expect(policy.remainingWait(openedAt: nil, now: start, idle: .milliseconds(200)) == .milliseconds(200))
        #expect(policy.remainingWait(openedAt: start, now: start + .milliseconds(20), idle: .milliseconds(200)) == .milliseconds(30))
        #expect(policy.remainingWait(openedAt: start, now: start + .seconds(1), idle: .milliseconds(200)) == .zero)
    }
}
