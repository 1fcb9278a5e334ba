/// History in, anomalies out. Pure: no I/O, no clock, nothing but the events, so a simulator
/// and `once verify` judge a run by the same rules.
public enum HistoryChecker {
    public static func check(_ history: [HistoryEvent]) -> CheckReport {
        let index = HistoryIndex(history)
        var report = CheckReport()
        report.recordsWritten = index.records.count
        report.recordsRead = index.reads.count
        report.transactions = index.transactions.count
        report.transactionsAborted = index.transactions.values.filter { $0.outcome == .aborted }.count
        report.transactionsUnknown = index.transactions.values.filter { $0.outcome == .unknown }.count
        checkReadOutcomes(index, &report)
        checkDuplicates(index, &report)
        checkReadOrder(index, &report)
        checkVisibility(index, &report)
        checkTornTransactions(index, &report)
        checkOffsetAtomicity(index, &report)
        checkEpochs(index, &report)
        checkFencedAppends(index, &report)
        return report
    }
}
