import OnceCheck
import Testing

/// Each anomaly class: a small history that has it, and the nearest one that does not.
@Suite("History checker")
struct HistoryCheckerTests {
    @Test func cleanHistoryHasNoAnomalies() {
        let report = HistoryScript.clean.report
        #expect(report.anomalies == [:])
        #expect(report.transactions == 2)
        #expect(report.transactionsAborted == 1)
        #expect(report.recordsRead == 2)
    }

    @Test func readingAnAbortedRecordIsAnAbortedRead() {
        var script = HistoryScript.clean
        script.read("reader", "r3", at: 3)
        #expect(script.report.count(.abortedRead) == 1)
        #expect(HistoryScript.clean.report.count(.abortedRead) == 0)
    }

    @Test func outputDerivedFromAnAbortedRecordIsAnAbortedRead() {
        var script = HistoryScript.clean
        script.began("P1", instance: "proc", transactionalId: "proc", producerId: 2)
        script.sent("o1", in: "P1", topic: "out", source: "r3")
        script.acked("o1", at: 0)
        script.ended("P1", .committed)
        script.read("reader", "o1", at: 0, topic: "out")
        #expect(script.report.count(.abortedRead) == 1)

        var fromCommitted = HistoryScript.clean
        fromCommitted.began("P1", instance: "proc", transactionalId: "proc", producerId: 2)
        fromCommitted.sent("o1", in: "P1", topic: "out", source: "r1")
        fromCommitted.acked("o1", at: 0)
        fromCommitted.ended("P1", .committed)
        fromCommitted.read("reader", "o1", at: 0, topic: "out")
        #expect(fromCommitted.report.anomalies == [:])
    }

    @Test func readingARecordOfAnOpenTransactionIsAnUncommittedRead() {
        var script = HistoryScript.clean
        script.transaction("T3", [("r4", 0, 5)], outcome: nil)
        script.read("reader", "r4", at: 5)
        #expect(script.report.count(.uncommittedRead) == 1)

        var ended = HistoryScript.clean
        ended.transaction("T3", [("r4", 0, 5)], outcome: .committed)
        ended.read("reader", "r4", at: 5)
        #expect(ended.report.count(.uncommittedRead) == 0)
    }

    @Test func readingARecordNobodyWroteIsAnUncommittedRead() {
        var script = HistoryScript.clean
        script.read("reader", "ghost", at: 2)
        #expect(script.report.count(.uncommittedRead) == 1)
    }

    @Test func anAcknowledgedPlainWriteNeverReadPastIsLost() {
        var script = HistoryScript.clean
        script.sent("p1")
        script.acked("p1", at: 5)
        script.reachedEnd("reader", at: 6)
        #expect(script.report.count(.lostWrite) == 1)

        // The reader stopped before the write's offset: nothing says it is lost.
        var notPassed = HistoryScript.clean
        notPassed.sent("p1")
        notPassed.acked("p1", at: 5)
        #expect(notPassed.report.count(.lostWrite) == 0)
    }

    @Test func aCommittedTransactionNobodySawIsLost() {
        var script = HistoryScript()
        script.transaction("T1", [("r1", 0, 0)], outcome: .committed)
        script.started("reader")
        script.reachedEnd("reader", at: 2)
        #expect(script.report.count(.lostWrite) == 1)

        // The same records with an unknown outcome may have been aborted.
        var unknown = HistoryScript()
        unknown.transaction("T1", [("r1", 0, 0)], outcome: .unknown)
        unknown.started("reader")
        unknown.reachedEnd("reader", at: 2)
        #expect(unknown.report.anomalies == [:])
    }

    @Test func oneRecordAtTwoOffsetsIsADuplicate() {
        var script = HistoryScript.clean
        script.started("second")
        script.read("second", "r1", at: 0)
        script.read("second", "r1", at: 2)
        #expect(script.report.count(.duplicate) == 1)

        var sameOffsetTwice = HistoryScript.clean
        sameOffsetTwice.started("second")
        sameOffsetTwice.read("second", "r1", at: 0)
        sameOffsetTwice.read("second", "r2", at: 1)
        #expect(sameOffsetTwice.report.count(.duplicate) == 0)
    }

    @Test func oneInputInTheOutputTwiceIsADuplicate() {
        var script = HistoryScript.clean
        for (transaction, output, offset) in [("P1", "o1", Int64(0)), ("P2", "o2", Int64(2))] {
            script.began(transaction, instance: "proc", transactionalId: "proc", producerId: 2)
            script.sent(output, in: transaction, topic: "out", source: "r1")
            script.acked(output, at: offset)
            script.ended(transaction, .committed)
        }
        script.read("reader", "o1", at: 0, topic: "out")
        script.read("reader", "o2", at: 2, topic: "out")
        #expect(script.report.count(.duplicate) == 1)

        // The second attempt aborted and is not visible: processed once.
        var retried = HistoryScript.clean
        for (transaction, output, offset, outcome) in [
            ("P1", "o1", Int64(0), TransactionOutcome.aborted), ("P2", "o2", Int64(2), .committed),
        ] {
            retried.began(transaction, instance: "proc", transactionalId: "proc", producerId: 2)
            retried.sent(output, in: transaction, topic: "out", source: "r1")
            retried.acked(output, at: offset)
            retried.ended(transaction, outcome)
        }
        retried.read("reader", "o2", at: 2, topic: "out")
        #expect(retried.report.count(.duplicate) == 0)
    }

    @Test func seeingPartOfATransactionIsTorn() {
        var script = HistoryScript()
        script.transaction("T1", [("r1", 0, 0), ("r2", 1, 0)], outcome: .unknown)
        script.started("reader", partition: 0)
        script.started("reader", partition: 1)
        script.read("reader", "r1", at: 0)
        script.reachedEnd("reader", partition: 0, at: 2)
        script.reachedEnd("reader", partition: 1, at: 2)
        #expect(script.report.count(.tornTransaction) == 1)

        // A reader that never read partition 1 cannot tell.
        var partial = HistoryScript()
        partial.transaction("T1", [("r1", 0, 0), ("r2", 1, 0)], outcome: .unknown)
        partial.started("reader", partition: 0)
        partial.read("reader", "r1", at: 0)
        partial.reachedEnd("reader", partition: 0, at: 2)
        #expect(partial.report.count(.tornTransaction) == 0)
    }

    /// A processor transaction P1 turning r1 and r2 into o1 and o2 and committing group g's
    /// offset 2 (past both).
    static func processed(
        outcome: TransactionOutcome, outputRead: Bool, committed: Int64?, inputs: [String] = ["r1", "r2"]
    ) -> HistoryScript {
        var script = HistoryScript.clean
        script.began("P1", instance: "proc", transactionalId: "proc", producerId: 2)
        for (n, input) in inputs.enumerated() {
            script.sent("o-\(input)", in: "P1", topic: "out", source: input)
            script.acked("o-\(input)", at: Int64(n))
        }
        script.events.append(.offsetsSent(transaction: "P1", group: "g", topic: "in", partition: 0, offset: 2))
        script.ended("P1", outcome)
        script.started("reader", topic: "out")
        if outputRead {
            for (n, input) in inputs.enumerated() { script.read("reader", "o-\(input)", at: Int64(n), topic: "out") }
        }
        script.reachedEnd("reader", topic: "out", at: Int64(inputs.count) + 1)
        if let committed {
            script.events.append(.committedOffsetObserved(group: "g", topic: "in", partition: 0, offset: committed))
        }
        return script
    }

    /// The descriptions of the offsets-not-atomic anomalies that contain `fragment`.
    static func notAtomic(_ script: HistoryScript, _ fragment: String) -> [String] {
        (script.report.anomalies[.offsetsNotAtomic] ?? []).filter { $0.contains(fragment) }
    }

    @Test func aCommittedOffsetWithoutItsOutputIsNotAtomic() {
        let script = Self.processed(outcome: .unknown, outputRead: false, committed: 2)
        #expect(Self.notAtomic(script, "with transaction P1, whose output").count == 1)
        // Both inputs the offset passed are missing from the output, too.
        #expect(Self.notAtomic(script, "which is not in the output").count == 2)
        #expect(Self.processed(outcome: .unknown, outputRead: true, committed: 2).report.anomalies == [:])
        #expect(Self.processed(outcome: .unknown, outputRead: false, committed: 0).report.anomalies == [:])
    }

    @Test func aCommittedOffsetPastAnUnprocessedInputIsNotAtomic() {
        let script = Self.processed(outcome: .committed, outputRead: true, committed: 2, inputs: ["r1"])
        #expect(script.report.anomalies[.offsetsNotAtomic] == [
            "group g committed in-0 at 2, past input r2 at 1, which is not in the output"
        ])
        #expect(Self.processed(outcome: .committed, outputRead: true, committed: 2).report.anomalies == [:])
    }

    @Test func visibleOutputWithoutItsOffsetIsNotAtomic() {
        let script = Self.processed(outcome: .unknown, outputRead: true, committed: 0)
        #expect(script.report.count(.offsetsNotAtomic) == 1)
        #expect(Self.processed(outcome: .committed, outputRead: true, committed: 2).report.anomalies == [:])
    }

    @Test func anOffsetOnlyAnAbortedTransactionSentIsNotAtomic() {
        let script = Self.processed(outcome: .aborted, outputRead: false, committed: 2)
        #expect(Self.notAtomic(script, "sent only by aborted transaction P1").count == 1)
        #expect(Self.processed(outcome: .aborted, outputRead: false, committed: 0).report.anomalies == [:])
    }

    @Test func anEpochThatDoesNotGrowIsARegression() {
        var script = HistoryScript()
        script.initialized("a", epoch: 3)
        script.initialized("b", epoch: 3)
        #expect(script.report.count(.epochRegression) == 1)

        var growing = HistoryScript()
        growing.initialized("a", epoch: 3)
        growing.initialized("b", epoch: 4)
        growing.initialized("c", producerId: 9, epoch: 0)
        #expect(growing.report.anomalies == [:])
    }

    @Test func anAcknowledgementAfterANewerInstanceInitializedIsAFencedAppend() {
        var script = HistoryScript()
        script.initialized("a", epoch: 0)
        script.began("T1", instance: "a", epoch: 0)
        script.sent("r1", in: "T1")
        script.initialized("b", epoch: 1)
        script.acked("r1", at: 0)
        #expect(script.report.count(.fencedAppend) == 1)

        var beforeFence = HistoryScript()
        beforeFence.initialized("a", epoch: 0)
        beforeFence.began("T1", instance: "a", epoch: 0)
        beforeFence.sent("r1", in: "T1")
        beforeFence.acked("r1", at: 0)
        beforeFence.initialized("b", epoch: 1)
        #expect(beforeFence.report.anomalies == [:])
    }

    @Test func anAcknowledgementAfterTheInstanceWasToldItIsFencedIsAFencedAppend() {
        var script = HistoryScript()
        script.initialized("a", epoch: 0)
        script.began("T1", instance: "a", epoch: 0)
        script.sent("r1", in: "T1")
        script.events.append(.fenced(transactionalId: "t1", instance: "a", producerId: 1, epoch: 0))
        script.acked("r1", at: 0)
        #expect(script.report.count(.fencedAppend) == 1)
    }

    @Test func goingBackInAPartitionIsANonMonotonicRead() {
        var script = HistoryScript()
        script.transaction("T1", [("r1", 0, 0), ("r2", 0, 1)], outcome: .committed)
        script.started("reader")
        script.read("reader", "r2", at: 1)
        script.read("reader", "r1", at: 0)
        #expect(script.report.count(.nonMonotonicRead) == 1)
        #expect(HistoryScript.clean.report.count(.nonMonotonicRead) == 0)
    }

    @Test func passingACommittedRecordAnotherReaderSawIsASkippedRead() {
        var script = HistoryScript.clean
        for (record, offset) in [("p1", Int64(5)), ("p2", Int64(6))] {
            script.sent(record)
            script.acked(record, at: offset)
            script.read("reader", record, at: offset)
        }
        script.started("second", at: 5)
        script.read("second", "p2", at: 6)
        #expect(script.report.count(.skippedRead) == 1)
        #expect(script.report.count(.lostWrite) == 0)

        var startedLater = HistoryScript.clean
        for (record, offset) in [("p1", Int64(5)), ("p2", Int64(6))] {
            startedLater.sent(record)
            startedLater.acked(record, at: offset)
            startedLater.read("reader", record, at: offset)
        }
        startedLater.started("second", at: 6)
        startedLater.read("second", "p2", at: 6)
        #expect(startedLater.report.anomalies == [:])
    }
}
