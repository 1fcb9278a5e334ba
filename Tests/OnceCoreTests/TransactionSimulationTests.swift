import Foundation
import OnceCore
import Testing

/// A deterministic simulation of the coordinator and the partitions' producer-state tables, the same
/// code the broker runs, under a seeded random schedule of producers, zombies, commits, aborts,
/// timeouts, crashes (also between a durable prepare and its markers) and restarts. Checkers:
/// no read_committed read returns an aborted record, every prepared transaction completes, epochs only
/// grow, and a fenced producer never appends. A failure names its seed; the run replays exactly.
@Suite("Transaction simulation")
struct TransactionSimulationTests {
    /// CI runs 24 short seeds; `scripts/soak.sh` sets ONCE_SIM_SEEDS / ONCE_SIM_STEPS for long runs,
    /// and ONCE_SIM_FIRST_SEED to replay a reported seed.
    static let seeds: [UInt64] = {
        let env = ProcessInfo.processInfo.environment
        let first = env["ONCE_SIM_FIRST_SEED"].flatMap(UInt64.init) ?? 1
        let count = env["ONCE_SIM_SEEDS"].flatMap(UInt64.init) ?? 24
        return Array(first..<(first + count))
    }()
    static let steps = ProcessInfo.processInfo.environment["ONCE_SIM_STEPS"].flatMap(Int.init) ?? 1_500

    @Test("seeded runs keep every exactly-once invariant", arguments: seeds)
    func simulate(seed: UInt64) throws {
        var world = World(seed: seed)
        for _ in 0..<Self.steps { try world.step() }
        try world.finish()
    }

    enum Entry {
        case data(producerId: Int64, epoch: Int16, transactional: Bool, value: Int)
        case marker(producerId: Int64, epoch: Int16, commit: Bool)
    }

    struct Instance {
        var transactionalId: String
        var producerId: Int64
        var epoch: Int16
        var sequences: [Int: Int32] = [:]
        var inTransaction = false
    }

    struct Violation: Error, CustomStringConvertible {
        var description: String
    }

    struct World {
        let seed: UInt64
        var rng: SplitMix
        var now: Int64 = 0
        var nextProducerId: Int64 = 1
        var nextValue = 0
        // Durable state: partition logs and the transaction log.
        var logs: [[Entry]] = Array(repeating: [], count: 4)
        var transactionLog: [TransactionMetadata] = []
        // Volatile state, rebuilt on restart.
        var coordinator = TransactionCoordinator()
        var tables: [ProducerStateTable] = Array(repeating: ProducerStateTable(), count: 4)
        var instances: [Instance] = []
        /// Highest (producer id, epoch) the coordinator ever handed out per transactional id.
        var current: [String: (Int64, Int16)] = [:]
        let ids = ["a", "b", "c"]

        init(seed: UInt64) {
            self.seed = seed
            rng = SplitMix(seed: seed)
        }

        func fail(_ message: String) -> Violation {
            Violation(description: "seed \(seed): \(message)")
        }

        mutating func random(_ n: Int) -> Int { Int(rng.next() % UInt64(n)) }

        mutating func step() throws {
            now += Int64(random(400))
            switch random(100) {
            case 0..<10: try newInstance()
            case 10..<55: try write()
            case 55..<75: try end(commit: random(3) != 0)
            case 75..<82: try perform(coordinator.timeoutsChecked(now: now).actions)
            case 82..<86: try crashAndRestart()
            case 86..<90: try crashBetweenPrepareAndMarkers()
            default: try readCommitted(partition: random(logs.count))
            }
        }

        mutating func newInstance() throws {
            let id = ids[random(ids.count)]
            for _ in 0..<3 {
                var allocated = nextProducerId
                let outcome = coordinator.initProducerIdReceived(
                    transactionalId: id, timeoutMs: Int32(2_000 + random(8_000)), now: now,
                    newProducerId: { defer { allocated += 1 }; return allocated })
                nextProducerId = allocated
                try perform(outcome.actions)
                if outcome.failure == .concurrentTransactions { continue }
                guard outcome.failure == nil else { throw fail("init failed: \(String(describing: outcome.failure))") }
                instances.append(Instance(transactionalId: id, producerId: outcome.producerId, epoch: outcome.producerEpoch))
                return
            }
        }

        /// Whether an instance is the newest for its id (older ones are zombies).
        func isCurrent(_ instance: Instance) -> Bool {
            guard let c = current[instance.transactionalId] else { return false }
            return c.0 == instance.producerId && c.1 == instance.epoch
        }

        mutating func write() throws {
            guard !instances.isEmpty else { return }
            let i = random(instances.count)
            let partition = random(logs.count)
            var instance = instances[i]
            let key = TopicPartitionKey("t", Int32(partition))
            let added = coordinator.addPartitionsReceived(
                transactionalId: instance.transactionalId, producerId: instance.producerId, producerEpoch: instance.epoch,
                partitions: [key], now: now)
            try perform(added.actions)
            guard added.failure == nil else { return }
            instance.inTransaction = true
            // The broker's produce path: KIP-890 verification, then the producer-state table.
            guard coordinator.verify(producerId: instance.producerId, producerEpoch: instance.epoch, partition: key) == nil
            else { return }
            let count = Int32(1 + random(3))
            let sequence = instance.sequences[partition, default: 0]
            let batch = ProducerStateTable.IncomingBatch(
                producerId: instance.producerId, producerEpoch: instance.epoch, firstSequence: sequence,
                lastSequence: sequence + count - 1, isTransactional: true, maxTimestamp: now)
            guard tables[partition].check(batch) == .append else { return }
            if !isCurrent(instance) { throw fail("fenced producer \(instance.producerId)/\(instance.epoch) appended") }
            let first = Int64(logs[partition].count)
            for _ in 0..<count {
                logs[partition].append(.data(producerId: instance.producerId, epoch: instance.epoch, transactional: true, value: nextValue))
                nextValue += 1
            }
            tables[partition].batchAppended(batch, firstOffset: first, lastOffset: Int64(logs[partition].count - 1))
            instance.sequences[partition] = sequence + count
            instances[i] = instance
            // Plain records interleave with transactions.
            if random(4) == 0 {
                logs[partition].append(.data(producerId: -1, epoch: -1, transactional: false, value: nextValue))
                nextValue += 1
            }
        }

        mutating func end(commit: Bool) throws {
            guard !instances.isEmpty else { return }
            let i = random(instances.count)
            let instance = instances[i]
            let outcome = coordinator.endTransactionReceived(
                transactionalId: instance.transactionalId, producerId: instance.producerId, producerEpoch: instance.epoch,
                commit: commit, now: now)
            try perform(outcome.actions)
            if outcome.failure == nil { instances[i].inTransaction = false }
        }

        /// Performs actions as the broker does; `stopBeforeMarkers` crashes after the durable prepare.
        @discardableResult
        mutating func perform(_ actions: [TransactionCoordinator.Action], stopBeforeMarkers: Bool = false) throws -> Bool {
            for action in actions {
                switch action {
                case .persist(let txn):
                    if let (pid, epoch) = current[txn.transactionalId], txn.producerId == pid, txn.producerEpoch < epoch {
                        throw fail("epoch of \(txn.transactionalId) went back from \(epoch) to \(txn.producerEpoch)")
                    }
                    current[txn.transactionalId] = (txn.producerId, txn.producerEpoch)
                    transactionLog.append(txn)
                case .remove(let id):
                    transactionLog.removeAll { $0.transactionalId == id }
                case .writeMarkers(let id, let pid, let epoch, let commit, let partitions):
                    if stopBeforeMarkers { return false }
                    for key in partitions {
                        let p = Int(key.partition)
                        guard tables[p].checkMarker(producerId: pid, producerEpoch: epoch) == nil else { continue }
                        logs[p].append(.marker(producerId: pid, epoch: epoch, commit: commit))
                        tables[p].markerAppended(
                            producerId: pid, producerEpoch: epoch, commit: commit, coordinatorEpoch: 0,
                            offset: Int64(logs[p].count - 1), timestamp: now)
                    }
                    try perform(coordinator.markersWritten(transactionalId: id, now: now).actions)
                }
            }
            return true
        }

        /// Volatile state is lost; the coordinator and the tables are rebuilt from the durable logs.
        mutating func crashAndRestart() throws {
            var latest: [String: TransactionMetadata] = [:]
            for txn in transactionLog { latest[txn.transactionalId] = txn }
            coordinator = TransactionCoordinator()
            let recovery = coordinator.recover(Array(latest.values))
            tables = logs.map(Self.replay)
            try perform(recovery.actions)
        }

        mutating func crashBetweenPrepareAndMarkers() throws {
            guard let i = instances.indices.first(where: { instances[$0].inTransaction }) else { return }
            let instance = instances[i]
            let outcome = coordinator.endTransactionReceived(
                transactionalId: instance.transactionalId, producerId: instance.producerId, producerEpoch: instance.epoch,
                commit: random(2) == 0, now: now)
            try perform(outcome.actions, stopBeforeMarkers: true)
            try crashAndRestart()
        }

        static func replay(_ log: [Entry]) -> ProducerStateTable {
            var table = ProducerStateTable()
            var sequences: [Int64: Int32] = [:]
            var epochs: [Int64: Int16] = [:]
            for (offset, entry) in log.enumerated() {
                switch entry {
                case .data(let pid, let epoch, let transactional, _) where pid >= 0:
                    // Each simulated record is a one-record batch on replay; sequences restart per epoch.
                    if epochs[pid] != epoch { sequences[pid] = 0 }
                    epochs[pid] = epoch
                    let seq = sequences[pid, default: 0]
                    table.batchAppended(
                        .init(producerId: pid, producerEpoch: epoch, firstSequence: seq, lastSequence: seq,
                              isTransactional: transactional, maxTimestamp: 0),
                        firstOffset: Int64(offset), lastOffset: Int64(offset))
                    sequences[pid] = seq + 1
                case .marker(let pid, let epoch, let commit):
                    table.markerAppended(
                        producerId: pid, producerEpoch: epoch, commit: commit, coordinatorEpoch: 0, offset: Int64(offset), timestamp: 0)
                default:
                    break
                }
            }
            return table
        }

        /// The fate of each transactional record: the next marker of its producer in that partition.
        static func fates(_ log: [Entry]) -> [Int: Bool] {
            var fate: [Int: Bool] = [:]
            var open: [Int64: [Int]] = [:]
            for entry in log {
                switch entry {
                case .data(let pid, _, true, let value): open[pid, default: []].append(value)
                case .marker(let pid, _, let commit):
                    for v in open[pid] ?? [] { fate[v] = commit }
                    open[pid] = nil
                default: break
                }
            }
            return fate
        }

        /// A read_committed consumer's view: below the LSO, minus the aborted transactions it is told of.
        func readCommitted(partition p: Int) throws {
            let log = logs[p]
            let lso = Int(tables[p].firstUnstableOffset ?? Int64(log.count))
            var pending = tables[p].abortedTransactions(from: 0, upTo: Int64(lso)).sorted { $0.firstOffset < $1.firstOffset }
            var aborting = Set<Int64>()
            let fate = Self.fates(log)
            for offset in 0..<lso {
                while let next = pending.first, next.firstOffset <= Int64(offset) {
                    aborting.insert(next.producerId)
                    pending.removeFirst()
                }
                switch log[offset] {
                case .marker(let pid, _, _):
                    aborting.remove(pid)
                case .data(let pid, _, let transactional, let value):
                    if transactional && aborting.contains(pid) { continue }
                    if transactional && fate[value] != true {
                        throw fail("read_committed returned record \(value) of partition \(p) at \(offset), fate \(String(describing: fate[value]))")
                    }
                }
            }
        }

        /// After a last restart and enough time for every timeout, nothing is left prepared or open.
        mutating func finish() throws {
            try crashAndRestart()
            now += 1_000_000
            try perform(coordinator.timeoutsChecked(now: now).actions)
            for (id, txn) in coordinator.transactions where txn.state == .prepareCommit || txn.state == .prepareAbort || txn.state == .ongoing {
                throw fail("transaction \(id) left \(txn.state.name)")
            }
            for p in logs.indices {
                if let open = tables[p].firstUnstableOffset { throw fail("partition \(p) still unstable at \(open)") }
                try readCommitted(partition: p)
                let fate = Self.fates(logs[p])
                for case .data(_, _, true, let value) in logs[p] where fate[value] == nil {
                    throw fail("record \(value) in partition \(p) never got a marker")
                }
            }
        }
    }
}
