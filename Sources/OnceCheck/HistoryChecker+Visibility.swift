extension HistoryChecker {
    /// An acknowledged record that must be visible and lies in a range a reader read fully:
    /// a lost write when no reader returned it, a skipped read for each covering reader that
    /// passed over it while another returned it.
    static func checkVisibility(_ index: HistoryIndex, _ report: inout CheckReport) {
        for id in index.recordOrder {
            guard let record = index.records[id], index.mustBeVisible(record), let offset = record.offset else { continue }
            let covering = index.readerNames.filter { index.coverage[$0]![record.partition]?.covers(offset) == true }
            guard !covering.isEmpty else { continue }
            let missedBy = covering.filter { !index.coverage[$0]![record.partition]!.recordsRead.contains(id) }
            guard !missedBy.isEmpty else { continue }
            let what = record.transaction.map { "of committed transaction \($0)" } ?? "(plain write)"
            if index.isVisible(id) {
                for reader in missedBy {
                    report.add(
                        .skippedRead, "\(reader) passed \(record.partition)@\(offset) without returning record \(id) \(what)")
                }
            } else {
                report.add(
                    .lostWrite,
                    "record \(id) \(what), acknowledged at \(record.partition)@\(offset), was never read although \(missedBy.joined(separator: ", ")) read past it")
            }
        }
    }

    /// Within what a reader read fully, a transaction that may have committed is seen whole or
    /// not at all. (None of a committed transaction is a lost write, reported above.)
    static func checkTornTransactions(_ index: HistoryIndex, _ report: inout CheckReport) {
        for id in index.transactionOrder {
            guard let transaction = index.transactions[id],
                transaction.outcome == .committed || transaction.outcome == .unknown
            else { continue }
            for reader in index.readerNames {
                let ranges = index.coverage[reader]!
                var covered = 0
                var seen = 0
                for recordId in transaction.records {
                    guard let record = index.records[recordId], let offset = record.offset,
                        let coverage = ranges[record.partition], coverage.covers(offset)
                    else { continue }
                    covered += 1
                    if coverage.recordsRead.contains(recordId) { seen += 1 }
                }
                if seen > 0, seen < covered {
                    report.add(
                        .tornTransaction,
                        "\(reader) saw \(seen) of the \(covered) records of transaction \(id) in ranges it read fully")
                }
            }
        }
    }
}
