import KafkaProtocol
import OnceClient
import Testing

@Suite struct TransactionStateMachineTests {
    private let tp = TopicPartition("out", 0)

    /// A machine past InitProducerId, inside a transaction that wrote to `tp`.
    private func inTransactionWithPartition() throws -> TransactionStateMachine {
        var m = TransactionStateMachine()
        try m.initRequested()
        #expect(m.initCompleted(nil) == .success)
        try m.beginRequested()
        #expect(try m.recordAppended(to: tp))
        #expect(m.partitionsAdded([tp], error: nil) == .success)
        return m
    }

    @Test func aCommitGoesThroughEndTxnAndReturnsToReady() throws {
        var m = try inTransactionWithPartition()
        #expect(try m.recordAppended(to: tp) == false, "an added partition needs no second AddPartitionsToTxn")
        #expect(try m.commitRequested() == .sendEndTxn(commit: true))
        #expect(m.endCompleted(error: nil, ambiguous: false) == .success)
        #expect(m.state == .ready)
        #expect(m.addedPartitions.isEmpty)
    }

    @Test func anEmptyTransactionEndsLocally() throws {
        var m = TransactionStateMachine()
        try m.initRequested()
        _ = m.initCompleted(nil)
        try m.beginRequested()
        #expect(try m.commitRequested() == .completeLocally)
        m.completedLocally()
        #expect(m.state == .ready)
    }

    @Test func callsOutOfOrderAreInvalidState() throws {
        var m = TransactionStateMachine()
        #expect(throws: TransactionError(.invalidState, "")) { try m.beginRequested() }
        try m.initRequested()
        _ = m.initCompleted(nil)
        #expect(throws: TransactionError(.invalidState, "")) { try m.commitRequested() }
        #expect(throws: TransactionError(.invalidState, "")) { try m.recordAppended(to: tp) }
        try m.beginRequested()
        #expect(throws: TransactionError(.invalidState, "")) { try m.beginRequested() }
    }

    @Test func fencingIsFinal() throws {
        var m = try inTransactionWithPartition()
        _ = try m.commitRequested()
        let outcome = m.endCompleted(error: KafkaError(.producerFenced), ambiguous: false)
        guard case .failed(let error) = outcome else {
            Issue.record("expected a failure, got \(outcome)")
            return
        }
        #expect(error.kind == .fenced)
        #expect(throws: TransactionError(.fenced, "")) { try m.beginRequested() }
        #expect(throws: TransactionError(.fenced, "")) { try m.abortRequested() }
        #expect(throws: TransactionError(.fenced, "")) { try m.initRequested() }
    }

    @Test func aFailedRecordForcesAnAbort() throws {
        var m = try inTransactionWithPartition()
        m.produceFailed(KafkaError(.messageTooLarge))
        #expect(throws: TransactionError(.abortRequired, "")) { try m.commitRequested() }
        #expect(throws: TransactionError(.abortRequired, "")) { try m.recordAppended(to: tp) }
        #expect(try m.abortRequested() == .sendEndTxn(commit: false))
        #expect(m.endCompleted(error: nil, ambiguous: false) == .success)
        #expect(m.state == .ready)
    }

    @Test func aFencedProduceIsFencingNotAnAbort() throws {
        var m = try inTransactionWithPartition()
        m.produceFailed(KafkaError(.invalidProducerEpoch))
        #expect(throws: TransactionError(.fenced, "")) { try m.abortRequested() }
    }

    /// KAFKA-17754: an abort sent after a commit that timed out could reach the coordinator
    /// after the commit was logged, or abort a later transaction. The machine never asks for
    /// that abort; it demands re-initialisation.
    @Test func anAmbiguousCommitLeadsToReinitialisationNeverAnAbort() throws {
        var m = try inTransactionWithPartition()
        _ = try m.commitRequested()
        guard case .failed(let error) = m.endCompleted(error: nil, ambiguous: true) else {
            Issue.record("an unknown outcome must fail the commit")
            return
        }
        #expect(error.kind == .outcomeUnknown)
        #expect(m.state == .needsReinitialization)
        #expect(m.needsInit)
        #expect(try m.abortRequested() == .reinitialize)
        #expect(throws: TransactionError(.invalidState, "")) { try m.beginRequested() }
        try m.initRequested()
        #expect(m.initCompleted(nil) == .success)
        try m.beginRequested()
        #expect(m.state == .inTransaction)
    }

    @Test func coordinatorErrorsAreRetriedWithoutChangingState() throws {
        var m = try inTransactionWithPartition()
        _ = try m.commitRequested()
        #expect(m.endCompleted(error: KafkaError(.concurrentTransactions), ambiguous: false) == .retry)
        #expect(m.endCompleted(error: KafkaError(.notCoordinator), ambiguous: false) == .retry)
        #expect(m.state == .committing)
        #expect(m.endCompleted(error: nil, ambiguous: false) == .success)
    }

    @Test func aRejectedCommitMustBeAborted() throws {
        var m = try inTransactionWithPartition()
        _ = try m.commitRequested()
        guard case .failed(let error) = m.endCompleted(error: KafkaError(.invalidTxnState), ambiguous: false) else {
            Issue.record("expected a failure")
            return
        }
        #expect(error.kind == .abortRequired)
        #expect(try m.abortRequested() == .sendEndTxn(commit: false))
    }

    @Test func offsetsMakeATransactionNonEmpty() throws {
        var m = TransactionStateMachine()
        try m.initRequested()
        _ = m.initCompleted(nil)
        #expect(throws: TransactionError(.invalidState, "")) { try m.offsetsRequested() }
        try m.beginRequested()
        try m.offsetsRequested()
        #expect(m.offsetsAdded(error: nil, during: "AddOffsetsToTxn") == .success)
        #expect(try m.commitRequested() == .sendEndTxn(commit: true))
    }

    @Test func addPartitionsFailureEndsTheTransaction() throws {
        var m = TransactionStateMachine()
        try m.initRequested()
        _ = m.initCompleted(nil)
        try m.beginRequested()
        _ = try m.recordAppended(to: tp)
        #expect(m.partitionsAdded([tp], error: KafkaError(.coordinatorLoadInProgress)) == .retry)
        #expect(m.pendingPartitions == [tp])
        _ = m.partitionsAdded([tp], error: KafkaError(.transactionalIdAuthorizationFailed))
        #expect(throws: TransactionError(.fatal, "")) { try m.commitRequested() }
    }

    @Test func initFencedByANewerProducerIsFatal() throws {
        var m = TransactionStateMachine()
        try m.initRequested()
        #expect(m.initCompleted(KafkaError(.coordinatorNotAvailable)) == .retry)
        guard case .failed(let error) = m.initCompleted(KafkaError(.producerFenced)) else {
            Issue.record("expected fencing")
            return
        }
        #expect(error.kind == .fenced)
    }
}
