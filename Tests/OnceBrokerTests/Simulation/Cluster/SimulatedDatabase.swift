import KafkaProtocol
import NIOCore
import OnceCore
import OnceStorage

/// The one database a simulated cluster shares: the postgres engine's tables as plain values
/// (topics, partition bounds and batches, lease rows, broker rows, state documents) on the
/// simulated clock. Every call of a broker's `SimulatedClusterStorage` is one transaction here,
/// atomic because a scheduler job is; the append round commits only if every lease it names is
/// still held by its node at its epoch and each partition's first batch starts at the stored log
/// end, as `once_append` does. It also keeps what the checker needs and no broker can see: who
/// committed under which epoch.
final class SimulatedDatabase: @unchecked Sendable {
    struct Lease {
        var holder: Int32
        var epoch: Int32
        /// `Int64.min` once handed off: released for the broker the placement named.
        var expiresAt: Int64
    }

    struct BrokerRow {
        var incarnation: Int64
        var listeners: String
        var rack: String?
        var expiresAt: Int64
    }

    struct StoredBatch {
        var baseOffset: Int64
        var lastOffset: Int64
        var bytes: [UInt8]
    }

    struct PartitionRows {
        var logStart: Int64 = 0
        var logEnd: Int64 = 0
        var batches: [StoredBatch] = []
    }

    let clock: SimulatedClock
    var topics: [String: TopicMetadata] = [:]
    var partitions: [TopicPartitionKey: PartitionRows] = [:]
    var leases: [TopicPartitionKey: Lease] = [:]
    var brokers: [Int32: BrokerRow] = [:]
    var documents: [String: [UInt8]] = [:]
    /// The database does not answer anyone until then.
    var unreachableUntil: Int64 = .min
    /// The next this many append rounds of a node commit and then lose their answer.
    var losesAppendAnswers: [Int32: Int] = [:]
    /// Test-only defect: commits an append round whatever the lease says.
    var ignoresLeaseEpoch = false
    /// Which node committed batches to a partition under which epoch, and the highest epoch any
    /// commit of the partition carried.
    private(set) var committers: [TopicPartitionKey: [Int32: Set<Int32>]] = [:]
    private(set) var violations: [String] = []
    /// Commits to internal partitions, for a trace.
    private(set) var commitLog: [String] = []
    private(set) var lostAnswers = 0
    private(set) var leaseTakeovers = 0

    init(clock: SimulatedClock) { self.clock = clock }

    var now: Int64 { clock.now }
    var reachable: Bool { now >= unreachableUntil }

    func checkReachable() throws {
        guard reachable else { throw StorageError.io("simulated database unreachable") }
    }

    func brokerLive(_ node: Int32) -> Bool { (brokers[node]?.expiresAt ?? .min) > now }

    func leaseLive(_ key: TopicPartitionKey) -> Bool {
        guard let lease = leases[key] else { return false }
        return lease.expiresAt > now && brokerLive(lease.holder)
    }

    /// `PostgresSchema.takeLeases`: a partition nobody holds gets a lease at epoch 0, one this
    /// node held gets one epoch more (its earlier run's queued writes land nowhere).
    func takeLeases(node: Int32, _ keys: [TopicPartitionKey], seconds: Int64) -> [TopicPartitionKey: Int32] {
        var taken: [TopicPartitionKey: Int32] = [:]
        for key in keys {
            if var lease = leases[key] {
                guard lease.holder == node else { continue }
                lease.epoch += 1
                lease.expiresAt = now + seconds * 1000
                leases[key] = lease
            } else {
                leases[key] = Lease(holder: node, epoch: 0, expiresAt: now + seconds * 1000)
            }
            taken[key] = leases[key]!.epoch
        }
        return taken
    }

    func takeOver(node: Int32, _ key: TopicPartitionKey, sessionTimeoutMs: Int64) -> Int32? {
        guard var lease = leases[key], lease.expiresAt <= now || !brokerLive(lease.holder) else { return nil }
        lease.holder = node
        lease.epoch += 1
        lease.expiresAt = now + sessionTimeoutMs
        leases[key] = lease
        leaseTakeovers += 1
        return lease.epoch
    }

    /// What one round of `once_append` does with the batches of several partitions.
    enum AppendOutcome {
        case committed
        /// ON001: these partitions' leases are no longer the node's at the round's epoch.
        case leaseLost([TopicPartitionKey])
        /// ON002: a partition's first batch is not at the stored log end.
        case notAtLogEnd
    }

    func append(node: Int32, _ round: [(key: TopicPartitionKey, epoch: Int32, batches: [StoredBatch])]) -> AppendOutcome {
        let lost = round.filter { r in
            guard let lease = leases[r.key] else { return true }
            return lease.holder != node || lease.epoch != r.epoch
        }.map(\.key)
        if !lost.isEmpty && !ignoresLeaseEpoch { return .leaseLost(lost) }
        for r in round where partitions[r.key]?.logEnd != r.batches.first?.baseOffset {
            _ = r
            return .notAtLogEnd
        }
        for r in round {
            if let lease = leases[r.key], lease.epoch != r.epoch || lease.holder != node {
                violations.append("node \(node) committed to \(r.key) under epoch \(r.epoch) while node \(lease.holder) held epoch \(lease.epoch)")
            }
            let earlier = committers[r.key, default: [:]]
            if let other = earlier[r.epoch]?.first(where: { $0 != node }) {
                violations.append("nodes \(other) and \(node) both committed to \(r.key) under epoch \(r.epoch)")
            }
            if let highest = earlier.keys.max(), r.epoch < highest {
                violations.append("node \(node) committed to \(r.key) under epoch \(r.epoch) after epoch \(highest) had")
            }
            committers[r.key, default: [:]][r.epoch, default: []].insert(node)
            if r.key.topic.hasPrefix("__") {
                commitLog.append("[\(now)] \(node) committed \(r.key) \(r.batches.first!.baseOffset)...\(r.batches.last!.lastOffset) under \(r.epoch)")
            }
            partitions[r.key]!.batches += r.batches
            partitions[r.key]!.logEnd = r.batches.last!.lastOffset + 1
        }
        return .committed
    }

    /// The round committed; whether its answer is lost on the way back.
    func losesAnswer(node: Int32) -> Bool {
        guard let left = losesAppendAnswers[node], left > 0 else { return false }
        losesAppendAnswers[node] = left - 1
        lostAnswers += 1
        return true
    }

    /// Every committed record batch of a partition, decoded: the ground truth the checks compare
    /// the clients' acknowledgements against.
    func committedBatches(_ key: TopicPartitionKey) throws -> [RecordBatch] {
        try (partitions[key]?.batches ?? []).flatMap { try RecordBatch.decodeAll(from: ByteBuffer(bytes: $0.bytes)) }
    }
}
