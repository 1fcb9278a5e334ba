extension HistoryChecker {
    /// Aborted and uncommitted reads: directly by a reader, or through a processor whose output
    /// names the input record it came from.
    static func checkReadOutcomes(_ index: HistoryIndex, _ report: inout CheckReport) {
        func judge(_ recordId: String, how: String) {
            guard let record = index.records[recordId] else {
                report.add(.uncommittedRead, "\(how) record \(recordId), which was never written")
                return
            }
            guard let transactionId = record.transaction else { return }
            guard let transaction = index.transactions[transactionId] else {
                report.add(.uncommittedRead, "\(how) record \(recordId) of transaction \(transactionId), which never began")
                return
            }
            switch transaction.outcome {
            case .aborted:
                report.add(.abortedRead, "\(how) record \(recordId) of aborted transaction \(transactionId)")
            case nil:
                report.add(.uncommittedRead, "\(how) record \(recordId) of transaction \(transactionId), which never ended")
            case .committed, .unknown:
                break
            }
        }
        for read in index.reads {
            judge(read.record, how: "\(read.reader) read at \(read.partition)@\(read.offset)")
        }
        for id in index.recordOrder {
            guard let record = index.records[id], let source = record.source, index.isVisible(id) else { continue }
            judge(source, how: "visible output \(id) was derived from")
        }
    }

    /// One record id at two offsets, and one input record behind two visible outputs.
    static func checkDuplicates(_ index: HistoryIndex, _ report: inout CheckReport) {
        var placesByRecord: [String: Set<String>] = [:]
        var order: [String] = []
        for read in index.reads {
            if placesByRecord[read.record] == nil { order.append(read.record) }
            placesByRecord[read.record, default: []].insert("\(read.partition)@\(read.offset)")
        }
        for id in order where placesByRecord[id]!.count > 1 {
            report.add(.duplicate, "record \(id) was read at \(placesByRecord[id]!.sorted().joined(separator: " and "))")
        }
        var outputsBySource: [String: [String]] = [:]
        var sources: [String] = []
        for id in index.recordOrder {
            guard let source = index.records[id]?.source, index.isVisible(id) else { continue }
            if outputsBySource[source] == nil { sources.append(source) }
            outputsBySource[source, default: []].append(id)
        }
        for source in sources where outputsBySource[source]!.count > 1 {
            report.add(
                .duplicate,
                "input \(source) is in the output \(outputsBySource[source]!.count) times: \(outputsBySource[source]!.joined(separator: ", "))")
        }
    }

    /// Each reader's offsets in a partition strictly increase in the order it returned them.
    static func checkReadOrder(_ index: HistoryIndex, _ report: inout CheckReport) {
        var last: [String: [PartitionKey: Int64]] = [:]
        for read in index.reads {
            if let previous = last[read.reader]?[read.partition], read.offset <= previous {
                report.add(
                    .nonMonotonicRead,
                    "\(read.reader) read \(read.partition)@\(read.offset) after \(read.partition)@\(previous)")
            }
            last[read.reader, default: [:]][read.partition] = read.offset
        }
    }
}
