import OnceBroker

/// Inline SVG drawings: no script and no external asset, so they render wherever the HTML does.
enum ConsoleCharts {
    /// Open transactions as bars on one time axis, from each one's start to now; red bars hold an
    /// LSO back, the tick on each bar is where its timeout falls.
    static func timeline(_ transactions: [BrokerSnapshot.OpenTransaction]) -> String {
        let width = 760.0, label = 200.0, rowHeight = 22.0
        let span = Double(max(1, transactions.map { max($0.ageMs, Int64($0.timeoutMs)) }.max() ?? 1))
        let scale = (width - label - 10) / span
        var rows = ""
        for (i, t) in transactions.enumerated() {
            let y = Double(i) * rowHeight + 4
            let barWidth = max(2, Double(t.ageMs) * scale)
            let x = width - 10 - barWidth
            let timeoutX = width - 10 - Double(t.timeoutMs) * scale
            let colour = t.holdingLastStableOffset.isEmpty ? "#3b82f6" : "#dc2626"
            rows += """
                <text x="0" y="\(y + 14)" font-size="12">\(esc(String(t.transactionalId.prefix(28))))</text>\
                <rect x="\(x)" y="\(y)" width="\(barWidth)" height="16" fill="\(colour)"><title>\(esc(t.transactionalId)): \
                \(esc(t.state)), \(esc(humanDuration(ms: t.ageMs))) old, producer \(t.producerId) epoch \(t.producerEpoch)</title></rect>\
                <line x1="\(timeoutX)" x2="\(timeoutX)" y1="\(y - 2)" y2="\(y + 18)" stroke="#6b7580" stroke-dasharray="2,2"/>
                """
        }
        let height = Double(transactions.count) * rowHeight + 24
        return """
            <svg id="transaction-timeline" width="\(Int(width))" height="\(Int(height))" role="img" aria-label="open transactions by age">\
            \(rows)<text x="\(label)" y="\(height - 4)" font-size="11" fill="#6b7580">\(esc(humanDuration(ms: Int64(span)))) ago</text>\
            <text x="\(width - 30)" y="\(height - 4)" font-size="11" fill="#6b7580">now</text></svg>
            """
    }

    /// A group's total lag over the samples kept, as a polyline.
    static func lagChart(_ samples: [LagHistory.Sample]) -> String {
        guard samples.count >= 2, let first = samples.first, let last = samples.last else {
            return "<p class=\"muted\">Lag chart: not enough samples yet.</p>"
        }
        let width = 480.0, height = 120.0, pad = 6.0
        let maxLag = Double(max(1, samples.map(\.totalLag).max() ?? 1))
        let spanMs = Double(max(1, last.atMs - first.atMs))
        let points = samples.map { s in
            let x = pad + Double(s.atMs - first.atMs) / spanMs * (width - 2 * pad)
            let y = height - pad - Double(s.totalLag) / maxLag * (height - 2 * pad)
            return "\(Int(x)),\(Int(y))"
        }.joined(separator: " ")
        return """
            <svg class="lag-chart" width="\(Int(width))" height="\(Int(height) + 14)" role="img" aria-label="total lag over time">\
            <rect x="0" y="0" width="\(Int(width))" height="\(Int(height))" fill="#fff" stroke="#d8dde3"/>\
            <polyline fill="none" stroke="#3b82f6" stroke-width="2" points="\(points)"/>\
            <text x="4" y="14" font-size="11" fill="#6b7580">max \(Int64(maxLag))</text>\
            <text x="4" y="\(Int(height) + 12)" font-size="11" fill="#6b7580">\(esc(humanDuration(ms: Int64(spanMs)))) ago</text>\
            <text x="\(Int(width) - 26)" y="\(Int(height) + 12)" font-size="11" fill="#6b7580">now</text></svg>
            """
    }
}
