import OnceCheck

/// The lines `once verify` prints for a report: every anomaly class with its count and a few
/// examples, then one summary line.
public enum ReportText {
    public static func lines(_ report: CheckReport, examples: Int, faults: Int? = nil) -> [String] {
        var lines: [String] = []
        for kind in AnomalyKind.allCases {
            let found = report.anomalies[kind] ?? []
            lines.append("\(kind.rawValue): \(found.count)")
            for example in found.prefix(examples) { lines.append("  \(example)") }
        }
        let faultText = faults.map { ", \($0) faults" } ?? ""
        lines.append(
            "verify: \(report.recordsWritten) records, \(report.transactions) transactions (\(report.transactionsAborted) aborted, \(report.transactionsUnknown) unknown)\(faultText), anomalies: \(report.anomalyCount)")
        return lines
    }
}
