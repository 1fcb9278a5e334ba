import OnceCheck

/// What the simulated clients did and saw, as plain facts, and the invariants checked over them:
/// every anomaly found is named with enough detail to follow it in the replayed seed. The same
/// history also goes, as `events`, through OnceCheck, the checker `once verify` runs against any
/// cluster; the checks here add what only a simulation can see (the coordinator's snapshots,
/// prepared transactions, the LSO, what a power cut may take).
struct SimulationHistory {
    /// One transaction of one client instance.
    struct Transaction {
        var transactionalId: String
        var instance: Int
        /// Values whose produce was handed to the broker (possibly appended), and those acknowledged.
        var sent: Set<String> = []
        var acked: Set<String> = []
        var commitDelivered = false
        var commitAcked = false
        var abortAcked = false
        /// The consumer offset this transaction committed for its group, if any.
        var groupOffset: Int64?
    }

    var transactions: [String: Transaction] = [:]
    var idempotentAcked: Set<String> = []
    /// read_committed reads as they happened: value and offset, per partition.
    var reads: [Int32: [(offset: Int64, value: String)]] = [:]
    /// Who was handed each producer id and epoch, per transactional id.
    var epochOwners: [String: [Int64: [Int16: Int]]] = [:]
    var maxEpoch: [String: (producerId: Int64, epoch: Int16)] = [:]
    /// When (in the world's moments) each producer id and epoch was first answered to a client.
    var grantedAt: [String: [Int64: [Int16: Int]]] = [:]
    var anomalies: [String] = []
    /// The client-side history in OnceCheck's terms.
    var events: [HistoryEvent] = []
    /// False once a power cut hit a policy that does not sync before acknowledging. From then on
    /// nothing acknowledged is owed: writes, epochs (two instances may get the same one) and
    /// markers may be lost, while the coordinator's log kept a later state, so even an aborted
    /// transaction's records can end up committed, as on any broker that does not fsync. What is
    /// still owed: no duplicate, and no transaction left hanging or prepared.
    var acknowledgementsAreDurable = true

    mutating func note(_ anomaly: String) { anomalies.append(anomaly) }

    /// InitProducerId (or a V2 EndTxn) answered (id, epoch) to `instance` at moment `at`.
    mutating func epochGranted(_ transactionalId: String, instance: Int, producerId: Int64, epoch: Int16, at moment: Int) {
        if grantedAt[transactionalId]?[producerId]?[epoch] == nil {
            grantedAt[transactionalId, default: [:]][producerId, default: [:]][epoch] = moment
        }
        if !acknowledgementsAreDurable {
            maxEpoch[transactionalId] = (producerId, epoch)
            return
        }
        if let owner = epochOwners[transactionalId]?[producerId]?[epoch], owner != instance {
            note("instances \(owner) and \(instance) of \(transactionalId) share producer \(producerId) epoch \(epoch)")
        }
        epochOwners[transactionalId, default: [:]][producerId, default: [:]][epoch] = instance
        if let max = maxEpoch[transactionalId], max.producerId == producerId, epoch < max.epoch {
            note("\(transactionalId) epoch went back from \(max.epoch) to \(epoch)")
        }
        if let max = maxEpoch[transactionalId], max.producerId != producerId, max.epoch < Int16.max - 1 {
            note("\(transactionalId) moved from producer \(max.producerId) (epoch \(max.epoch)) to \(producerId): the id was forgotten")
        }
        if maxEpoch[transactionalId].map({ $0.producerId != producerId || $0.epoch < epoch }) ?? true {
            maxEpoch[transactionalId] = (producerId, epoch)
        }
    }

    /// A produce from this epoch, read by the broker at moment `servedAt`, was acknowledged: a
    /// fenced (older) epoch never may be. With requests in flight together, a produce read before
    /// a newer epoch was answered may have been appended before the bump, which is no fault; one
    /// read after it must have been refused.
    mutating func appendAcked(_ transactionalId: String, producerId: Int64, epoch: Int16, values: [String], servedAt: Int) {
        guard acknowledgementsAreDurable, let grants = grantedAt[transactionalId]?[producerId] else { return }
        if let newer = grants.filter({ $0.key > epoch && $0.value < servedAt }).keys.max() {
            note("fenced \(transactionalId) epoch \(epoch) appended \(values) after epoch \(newer) was granted")
        }
    }

    func transaction(of value: String) -> String {
        String(value.split(separator: "/").prefix(3).joined(separator: "/"))
    }

    /// The final checks, over the log as a read_committed and a read_uncommitted reader see it
    /// once every transaction has ended, and the groups' committed offsets.
    mutating func check(
        committed: [Int32: [(offset: Int64, value: String)]], uncommitted: [String],
        groupOffsets: [String: Int64], ackedWritesMustSurvive: Bool, compacted: Bool = false
    ) {
        // Compaction removes what a later record of the same key supersedes: the checks that every
        // acknowledged or read record stays do not apply (the cleaner's own invariant is checked
        // around each pass); the ones that nothing aborted, uncommitted or doubled shows still do.
        let mustSurvive = ackedWritesMustSurvive && !compacted
        var visible: [String: Set<String>] = [:]
        var allVisible = Set<String>()
        for (_, records) in committed {
            for record in records {
                allVisible.insert(record.value)
                if record.value.hasPrefix("i/") { continue }
                visible[transaction(of: record.value), default: []].insert(record.value)
            }
        }
        for (partition, seen) in reads where mustSurvive {
            let final = Dictionary(uniqueKeysWithValues: (committed[partition] ?? []).map { ($0.offset, $0.value) })
            for read in seen where final[read.offset] != read.value {
                note("read \(read.value) at \(partition)/\(read.offset) is gone or changed (now \(final[read.offset] ?? "nothing"))")
            }
        }
        for (key, values) in visible.sorted(by: { $0.key < $1.key }) where ackedWritesMustSurvive {
            guard let txn = transactions[key] else { note("visible values of an unknown transaction \(key)"); continue }
            if !txn.commitDelivered { note("uncommitted read: \(key) never asked to commit, yet \(values.sorted()) visible") }
            if txn.abortAcked { note("aborted read: \(key) was aborted, yet \(values.sorted()) visible") }
            let missing = txn.acked.subtracting(values)
            if !missing.isEmpty && !compacted { note("torn transaction \(key): \(missing.sorted()) acknowledged but not visible with the rest") }
            let stray = values.subtracting(txn.sent)
            if !stray.isEmpty { note("\(key) shows values never sent: \(stray.sorted())") }
        }
        if mustSurvive {
            for (key, txn) in transactions.sorted(by: { $0.key < $1.key }) where txn.commitAcked {
                let lost = txn.acked.subtracting(visible[key] ?? [])
                if !lost.isEmpty { note("lost: \(key) committed, \(lost.sorted()) not visible") }
            }
            let lost = idempotentAcked.subtracting(allVisible)
            if !lost.isEmpty { note("lost idempotent writes: \(lost.sorted().prefix(5))") }
        }
        if ackedWritesMustSurvive {
            let report = HistoryChecker.check(events)
            let lossKinds: Set<AnomalyKind> = [.lostWrite, .tornTransaction, .skippedRead, .offsetsNotAtomic]
            for (kind, examples) in report.anomalies.sorted(by: { $0.key.rawValue < $1.key.rawValue })
            where !compacted || !lossKinds.contains(kind) {
                for example in examples.prefix(3) { note("OnceCheck \(kind.rawValue): \(example)") }
            }
        }
        var counts: [String: Int] = [:]
        for value in uncommitted { counts[value, default: 0] += 1 }
        for (value, count) in counts.sorted(by: { $0.key < $1.key }) where count > 1 {
            note("duplicate: \(value) stored \(count) times")
        }
        // Offsets move with the output: the group's committed offset is the newest visible
        // transaction's, among those that carried offsets.
        for (group, offset) in groupOffsets.sorted(by: { $0.key < $1.key }) where ackedWritesMustSurvive {
            let id = String(group.dropFirst(2))
            let carried = transactions.values.filter { $0.transactionalId == id && $0.groupOffset != nil }
            let newestVisible = visible.keys.compactMap { transactions[$0] }.filter { $0.transactionalId == id }
                .compactMap(\.groupOffset).max()
            let owner = carried.first { $0.groupOffset == offset }
            if let owner, !owner.commitDelivered || owner.abortAcked {
                note("group \(group) committed offset \(offset) from a transaction that did not commit")
            }
            if let newestVisible, newestVisible > offset {
                note("group \(group) at offset \(offset) though the output of offset \(newestVisible) is visible")
            }
        }
    }
}
