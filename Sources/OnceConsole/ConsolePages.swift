import OnceBroker

/// The console's pages, rendered from one `BrokerSnapshot`. Cells carry `data-field` names (and
/// rows their keys) so a script or a test can read numbers without scraping layout.
enum ConsolePages {
    static func health(_ s: BrokerSnapshot) -> String {
        let h = s.health
        let userTopics = s.topics.filter { !$0.isInternal }
        let rows: [(String, String, String)] = [
            ("version", "Version", esc(h.version)),
            ("cluster-id", "Cluster id", esc(h.clusterId)),
            ("node-id", "Node id", "\(h.nodeId)"),
            ("listen", "Kafka listeners", esc(h.listen)),
            ("uptime", "Uptime", esc(humanDuration(ms: h.uptimeMs))),
            ("connections", "Open Kafka connections", "\(h.openConnections)"),
            ("topics", "Topics", "\(userTopics.count)"),
            ("partitions", "Partitions", "\(userTopics.reduce(0) { $0 + $1.partitions.count })"),
            ("open-transactions", "Open transactions", "\(s.transactions.count)"),
            ("hanging-transactions", "Hanging transactions", "\(s.hanging.count)"),
            ("groups", "Consumer groups", "\(s.groups.count)"),
        ]
        let table = rows.map { field, name, value in "<tr><th>\(name)</th><td data-field=\"\(field)\">\(value)</td></tr>" }
            .joined(separator: "\n")
        return page(title: "Broker health", active: "Health", body: "<table id=\"health\">\(table)</table>")
    }

    static func topics(_ s: BrokerSnapshot) -> String {
        var body = ""
        for topic in s.topics {
            body += """
                <h2 data-topic="\(esc(topic.name))">\(esc(topic.name))\(topic.isInternal ? " <span class=\"muted\">(internal)</span>" : "")</h2>
                <p class="muted">id \(esc(topic.id))</p>
                <table class="partitions"><tr><th>Partition</th><th>Log start</th><th>High watermark</th><th>LSO</th><th>Records held by open transactions</th><th>Producers</th></tr>
                """
            for p in topic.partitions {
                let producers = p.producers.isEmpty ? "<span class=\"muted\">none</span>" : p.producers.map { pr in
                    let txn = pr.currentTransactionStartOffset.map { " · open transaction from \($0)" } ?? ""
                    return "<div data-producer-id=\"\(pr.producerId)\">id \(pr.producerId) epoch \(pr.producerEpoch) · last seq \(pr.lastSequence)\(txn)</div>"
                }.joined()
                let held = p.highWatermark - p.lastStableOffset
                body += """
                    <tr data-topic="\(esc(topic.name))" data-partition="\(p.partition)"\(held > 0 ? " class=\"holding\"" : "")>\
                    <td class="num">\(p.partition)</td>\
                    <td class="num" data-field="log-start">\(p.logStartOffset)</td>\
                    <td class="num" data-field="high-watermark">\(p.highWatermark)</td>\
                    <td class="num" data-field="lso">\(p.lastStableOffset)</td>\
                    <td class="num" data-field="lso-lag">\(held)</td>\
                    <td>\(producers)</td></tr>
                    """
            }
            body += "</table>"
        }
        if s.topics.isEmpty { body = "<p class=\"muted\">No topics yet.</p>" }
        return page(title: "Topics and partitions", active: "Topics", body: body)
    }

    static func transactions(_ s: BrokerSnapshot) -> String {
        var body = "<h2>Open transactions</h2>"
        if s.transactions.isEmpty {
            body += "<p class=\"muted\" id=\"no-open-transactions\">No open transactions.</p>"
        } else {
            body += ConsoleCharts.timeline(s.transactions)
            body += """
                <table id="open-transactions"><tr><th>Transactional id</th><th>State</th><th>Age</th><th>Timeout</th>\
                <th>Producer id</th><th>Epoch</th><th>Partitions</th><th>Holding the LSO of</th></tr>
                """
            for t in s.transactions {
                let partitions = t.partitions.map { esc("\($0.topic)-\($0.partition)") }.joined(separator: ", ")
                let holding = t.holdingLastStableOffset.map { esc("\($0.topic)-\($0.partition)") }.joined(separator: ", ")
                body += """
                    <tr class="txn\(holding.isEmpty ? "" : " holding")" data-transactional-id="\(esc(t.transactionalId))">\
                    <td>\(esc(t.transactionalId))</td><td data-field="state">\(esc(t.state))</td>\
                    <td class="num" data-field="age-ms" data-value="\(t.ageMs)">\(esc(humanDuration(ms: t.ageMs)))</td>\
                    <td class="num">\(esc(humanDuration(ms: Int64(t.timeoutMs))))</td>\
                    <td class="num" data-field="producer-id">\(t.producerId)</td><td class="num" data-field="producer-epoch">\(t.producerEpoch)</td>\
                    <td data-field="partitions">\(partitions)</td><td data-field="holding">\(holding)</td></tr>
                    """
            }
            body += "</table>"
        }
        body += "<h2>Hanging transactions</h2>"
        if s.hanging.isEmpty {
            body += "<p class=\"muted\" id=\"no-hanging-transactions\">None: every open transaction on a partition belongs to a live coordinator transaction.</p>"
        } else {
            body += """
                <p>Open on a partition with no live coordinator transaction (its marker or coordinator state was lost); \
                read_committed consumers wait at its first offset until it is aborted.</p>
                <table id="hanging-transactions"><tr><th>Partition</th><th>Producer id</th><th>Epoch</th><th>First offset</th><th>Holds the LSO</th><th></th></tr>
                """
            for h in s.hanging {
                let query = "topic=\(queryEscape(h.topic))&partition=\(h.partition)&producerId=\(h.producerId)&producerEpoch=\(h.producerEpoch)"
                body += """
                    <tr class="hanging" data-topic="\(esc(h.topic))" data-partition="\(h.partition)" data-producer-id="\(h.producerId)">\
                    <td>\(esc("\(h.topic)-\(h.partition)"))</td><td class="num">\(h.producerId)</td><td class="num">\(h.producerEpoch)</td>\
                    <td class="num">\(h.firstOffset)</td><td>\(h.holdsLastStableOffset ? "yes" : "no")</td>\
                    <td><a href="/transactions/abort?\(query)">Abort…</a></td></tr>
                    """
            }
            body += "</table>"
        }
        return page(title: "Transactions", active: "Transactions", body: body)
    }

    static func confirmAbort(topic: String, partition: Int32, producerId: Int64, producerEpoch: Int16) -> String {
        let query = "topic=\(queryEscape(topic))&partition=\(partition)&producerId=\(producerId)&producerEpoch=\(producerEpoch)"
        return page(title: "Abort a hanging transaction?", active: "Transactions", refreshSeconds: nil, body: """
            <p>This writes an ABORT marker for producer \(producerId) (epoch \(producerEpoch)) on partition \
            <strong>\(esc("\(topic)-\(partition)"))</strong>: its records since the transaction began become invisible to \
            read_committed consumers, and the partition's LSO moves on. The broker refuses (INVALID_TXN_STATE) if the \
            coordinator still considers the transaction live.</p>
            <form method="post" action="/transactions/abort?\(query)">
            <button type="submit" id="confirm-abort">Abort the transaction</button> <a href="/transactions">Cancel</a>
            </form>
            """)
    }

    static func abortResult(topic: String, partition: Int32, error: String) -> String {
        let ok = error == "NONE"
        return page(title: "Abort hanging transaction", active: "Transactions", refreshSeconds: nil, body: """
            <p id="abort-result" data-error="\(esc(error))" class="\(ok ? "ok" : "err")">\
            \(ok ? "Aborted" : "Refused: \(esc(error))") on \(esc("\(topic)-\(partition)")).</p>
            <p><a href="/transactions">Back to transactions</a></p>
            """)
    }

    static func groups(_ s: BrokerSnapshot, history: LagHistory) -> String {
        var body = ""
        for g in s.groups {
            body += """
                <h2 data-group="\(esc(g.groupId))">\(esc(g.groupId))</h2>
                <p>State <strong data-field="state">\(esc(g.state))</strong> · generation \(g.generationId) · \
                protocol \(esc(g.protocolType.isEmpty ? "none" : g.protocolType))\(g.protocolName.isEmpty ? "" : " / " + esc(g.protocolName)) · \
                total lag <strong data-field="total-lag">\(g.totalLag)</strong></p>
                \(ConsoleCharts.lagChart(history.samples(group: g.groupId)))
                <table class="members"><tr><th>Member</th><th>Client id</th><th>Host</th><th>Assignment</th></tr>
                """
            for m in g.members {
                let assignment = m.assignment.map { esc("\($0.topic)-\($0.partition)") }.joined(separator: ", ")
                body += """
                    <tr data-member-id="\(esc(m.memberId))"><td>\(esc(m.memberId))\(m.groupInstanceId.map { " <span class=\"muted\">(\(esc($0)))</span>" } ?? "")</td>\
                    <td>\(esc(m.clientId))</td><td>\(esc(m.clientHost))</td><td data-field="assignment">\(assignment)</td></tr>
                    """
            }
            if g.members.isEmpty { body += "<tr><td colspan=\"4\" class=\"muted\">no members</td></tr>" }
            body += """
                </table>
                <table class="offsets"><tr><th>Partition</th><th>Committed</th><th>High watermark</th><th>Lag</th></tr>
                """
            for o in g.offsets {
                body += """
                    <tr data-group="\(esc(g.groupId))" data-topic="\(esc(o.topic))" data-partition="\(o.partition)">\
                    <td>\(esc("\(o.topic)-\(o.partition)"))</td><td class="num" data-field="committed">\(o.committedOffset)</td>\
                    <td class="num">\(o.highWatermark)</td><td class="num" data-field="lag">\(o.lag)</td></tr>
                    """
            }
            body += "</table>"
        }
        if s.groups.isEmpty { body = "<p class=\"muted\">No consumer groups.</p>" }
        return page(title: "Consumer groups", active: "Groups", body: body)
    }

    static func starting() -> String {
        page(title: "Broker starting", active: "", refreshSeconds: 2, body: "<p>The broker is not serving yet.</p>")
    }
}
