extension HistoryChecker {
    /// Consumer offsets sent in a transaction take effect exactly when its output does. Judged
    /// against the group's committed offsets observed at the end; assumes, as a processor that
    /// reads in order does, that the offsets of a group's committed transactions only grow.
    static func checkOffsetAtomicity(_ index: HistoryIndex, _ report: inout CheckReport) {
        // The transaction that sent each final committed offset must have its output visible.
        for group in index.committedOffsets.keys.sorted() {
            for (partition, committed) in index.committedOffsets[group]!.sorted(by: { $0.key < $1.key }) {
                let senders = index.transactionOrder.compactMap { index.transactions[$0] }.filter { transaction in
                    transaction.offsets.contains { $0.group == group && $0.partition == partition && $0.offset == committed }
                }
                guard let sender = senders.last(where: { $0.outcome != .aborted }) else {
                    if !senders.isEmpty {
                        report.add(
                            .offsetsNotAtomic,
                            "group \(group) has \(partition) committed at \(committed), sent only by aborted transaction \(senders.last!.id)")
                    }
                    continue
                }
                let missing = sender.records.filter { recordId in
                    guard let record = index.records[recordId], let offset = record.offset else { return false }
                    return !index.isVisible(recordId)
                        && index.readerNames.contains { index.coverage[$0]![record.partition]?.covers(offset) == true }
                }
                if !missing.isEmpty {
                    report.add(
                        .offsetsNotAtomic,
                        "group \(group) committed \(partition) at \(committed) with transaction \(sender.id), whose output \(missing.joined(separator: ", ")) is not visible")
                }
            }
        }
        // Every input a committed offset has passed is in the output.
        var processedSources: Set<String> = []
        for id in index.recordOrder {
            if let source = index.records[id]?.source, index.isVisible(id) { processedSources.insert(source) }
        }
        for group in index.committedOffsets.keys.sorted() {
            for (partition, committed) in index.committedOffsets[group]!.sorted(by: { $0.key < $1.key }) {
                for id in index.recordOrder {
                    guard let record = index.records[id], record.partition == partition, let offset = record.offset,
                        offset < committed, index.mustBeVisible(record), !processedSources.contains(id)
                    else { continue }
                    report.add(
                        .offsetsNotAtomic,
                        "group \(group) committed \(partition) at \(committed), past input \(id) at \(offset), which is not in the output")
                }
            }
        }
        // Visible output means its transaction's offsets were committed.
        for id in index.transactionOrder {
            guard let transaction = index.transactions[id], transaction.records.contains(where: index.isVisible) else {
                continue
            }
            for sent in transaction.offsets {
                guard let observed = index.committedOffsets[sent.group] else { continue }
                let committed = observed[sent.partition]
                if (committed ?? -1) < sent.offset {
                    report.add(
                        .offsetsNotAtomic,
                        "output of transaction \(id) is visible but group \(sent.group) has \(sent.partition) at \(committed.map(String.init) ?? "no offset"), not \(sent.offset)")
                }
            }
        }
    }
}
