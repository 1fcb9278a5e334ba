import Logging
import OnceCore
import OnceStorage
import Synchronization

/// The cluster of a shared database (the postgres engine, or the simulator's): the brokers
/// registered in it whose heartbeats have not expired, and the partition leases they hold. Handlers read the last snapshot, never the
/// database; the heartbeat loop renews this broker's row and leases and takes a new snapshot.
final class DatabaseCluster: ClusterView {
    let nodeId: Int32
    private let storage: any ClusterDatabase
    /// Tells this run of the broker from an earlier one with the same node id (a restart after SIGKILL).
    private let incarnation: Int64
    private let sessionTimeoutMs: Int64
    private let logger: Logger
    private let state = Mutex<Snapshot>(Snapshot())
    private let listeners = Mutex<[any LeadershipListener]>([])
    /// Milliseconds on a clock that never jumps, for how long ago this broker's leases were renewed.
    private let elapsedMs: @Sendable () -> Int64
    /// When the last heartbeat that renewed this broker's row and leases was sent.
    private let renewedAtMs = Mutex<Int64?>(nil)
    /// Gained partitions some listener failed to load, with those listeners: loaded again at
    /// every heartbeat that reaches the database, while this broker holds the lease at that epoch.
    private let unloaded = Mutex<[TopicPartitionKey: FailedLoad]>([:])

    private struct FailedLoad {
        var epoch: Int32
        var listeners: [any LeadershipListener]
    }

    private struct Snapshot {
        var members: [ClusterMember] = []
        var leaders: [TopicPartitionKey: PartitionLeader] = [:]
        /// Partitions with a lease row at the last refresh, led or not.
        var known: Set<TopicPartitionKey> = []
    }

    /// - Parameter incarnation: drawn by the caller's random source, so a simulated run replays.
    /// - Parameter elapsedMs: a clock that never jumps (the simulator's in tests).
    init(
        storage: any ClusterDatabase, nodeId: Int32, sessionTimeoutMs: Int64, logger: Logger,
        incarnation: Int64 = .random(in: 1...Int64.max),
        elapsedMs: @escaping @Sendable () -> Int64 = DatabaseCluster.monotonicMs
    ) {
        self.storage = storage
        self.incarnation = incarnation
        self.elapsedMs = elapsedMs
        self.nodeId = nodeId
        self.sessionTimeoutMs = sessionTimeoutMs
        self.logger = logger
    }

    /// Joins the cluster before serving; throws `DuplicateNodeId` while another live broker has this id.
    /// - Parameter sleep: how a stale row of this node id is waited out (the simulator's clock in tests).
    func register(
        advertised: String, rack: String?,
        sleep: (Int64) async throws -> Void = { try await Task.sleep(for: .milliseconds($0)) }
    ) async throws {
        let sent = elapsedMs()
        try await storage.register(
            incarnation: incarnation, listeners: advertised, rack: rack, sessionTimeoutMs: sessionTimeoutMs, sleep: sleep)
        renewedAtMs.withLock { $0 = sent }
        try refresh(notify: false)
        // A broker alone over a database whose brokers are gone leads everything before it serves.
        if try takeOverUnledPartitions() { try refresh(notify: false) }
    }

    var announcesLeadership: Bool { true }

    /// Tells the listeners of the leases this broker took at start, before it serves: they are
    /// leadership gained like any taken over later, and the coordinators load only on such a call.
    func announceHeldLeases() {
        // The broker's start may have created the internal topics, leases included, since `register`.
        do { try refresh(notify: false) } catch {
            logger.warning("refreshing the cluster before serving failed", metadata: ["error": "\(error)"])
        }
        let held = state.withLock { s in s.leaders.filter { $0.value.nodeId == nodeId } }
        for (partition, leader) in held.sorted(by: { $0.key < $1.key }) {
            announceGained(partition, epoch: leader.epoch)
        }
    }

    private func announceGained(_ partition: TopicPartitionKey, epoch: Int32) {
        let failed = load(partition, epoch: epoch, into: listeners.withLock { $0 })
        unloaded.withLock { $0[partition] = failed.isEmpty ? nil : FailedLoad(epoch: epoch, listeners: failed) }
    }

    /// Tells each listener of the gain; returns those whose load threw.
    private func load(_ partition: TopicPartitionKey, epoch: Int32, into listeners: [any LeadershipListener])
        -> [any LeadershipListener]
    {
        listeners.filter { listener in
            do {
                try listener.leadershipGained(partition, epoch: epoch)
                return false
            } catch {
                logger.error("loading a gained partition failed; loading it again at the next heartbeat", metadata: [
                    "partition": "\(partition)", "epoch": "\(epoch)", "error": "\(error)",
                ])
                return true
            }
        }
    }

    /// Loads again what a listener failed to load, while this broker still holds the lease at the
    /// epoch it gained. Kafka's coordinator runtime leaves a failed load failed (NOT_COORDINATOR)
    /// until leadership moves, which a failing log directory makes happen; here the cause is the
    /// shared database away for a moment, which any broker taking the lease would find away too,
    /// so this broker keeps it and loads once a heartbeat gets through, at the heartbeat's pace.
    private func retryFailedLoads() {
        let pending = unloaded.withLock { $0 }
        guard !pending.isEmpty else { return }
        let leaders = state.withLock { $0.leaders }
        for (partition, failed) in pending.sorted(by: { $0.key < $1.key }) {
            let held = leaders[partition] == PartitionLeader(nodeId: nodeId, epoch: failed.epoch)
            let still = held ? load(partition, epoch: failed.epoch, into: failed.listeners) : []
            if held && still.isEmpty {
                logger.info("loaded a gained partition after a failed load", metadata: ["partition": "\(partition)"])
            }
            unloaded.withLock { u in
                // A gain at a newer epoch meanwhile recorded its own outcome.
                guard u[partition]?.epoch == failed.epoch else { return }
                u[partition] = still.isEmpty ? nil : FailedLoad(epoch: failed.epoch, listeners: still)
            }
        }
    }

    /// Leaves at a graceful shutdown, so the other brokers stop naming this one at once.
    func deregister() {
        do { try storage.deregister(incarnation: incarnation) } catch {
            logger.warning("leaving the cluster failed; the heartbeat will expire", metadata: ["error": "\(error)"])
        }
    }

    /// One heartbeat and a new snapshot. Returns false once another broker took this node id.
    func beat() -> Bool {
        let sent = elapsedMs()
        do {
            switch try storage.heartbeat(incarnation: incarnation, sessionTimeoutMs: sessionTimeoutMs) {
            case .replaced:
                logger.error("another broker registered node id \(nodeId) after this one's heartbeat expired; this broker stops heartbeating")
                return false
            case .renewed(_, let hadExpired):
                renewedAtMs.withLock { $0 = sent }
                if hadExpired {
                    logger.warning("this broker's heartbeat had expired: the other brokers counted it dead meanwhile")
                }
            }
            try refresh(notify: true)
            if try takeOverUnledPartitions() { try refresh(notify: true) }
            if try handOffSurplus() { try refresh(notify: true) }
            retryFailedLoads()
        } catch {
            // The database is unreachable: appends fail on their own, and the snapshot keeps the last
            // known leaders so clients are sent where leadership most likely still is.
            logger.warning("heartbeat failed", metadata: ["error": "\(error)"])
        }
        return true
    }

    /// Takes the leases the placement assigns to this broker among partitions no live broker
    /// leads, telling the listeners before the view reports this broker as leader. Returns
    /// whether anything was taken.
    private func takeOverUnledPartitions() throws -> Bool {
        let (members, leaders, known) = state.withLock { ($0.members, $0.leaders, $0.known) }
        let target = LeasePlacement.assign(
            partitions: Array(known), liveBrokers: members.map(\.nodeId), holders: leaders.mapValues(\.nodeId))
        var took = false
        for partition in known.sorted() where leaders[partition] == nil && target[partition] == nodeId {
            guard let epoch = try storage.takeOver(
                topic: partition.topic, partition: partition.partition, sessionTimeoutMs: sessionTimeoutMs)
            else { continue }
            took = true
            announceGained(partition, epoch: epoch)
            state.withLock { $0.leaders[partition] = PartitionLeader(nodeId: nodeId, epoch: epoch) }
            logger.info("gained leadership", metadata: ["partition": "\(partition)", "epoch": "\(epoch)"])
        }
        return took
    }

    /// Gives up the leases the placement assigns to another broker (one joined, so this broker
    /// holds more than its share). The view stops naming this broker first, so handlers refuse
    /// new appends with NOT_LEADER_OR_FOLLOWER, then the storage commits the accepted ones and
    /// releases the lease for the assigned broker to take at its next heartbeat.
    private func handOffSurplus() throws -> Bool {
        let (members, leaders, known) = state.withLock { ($0.members, $0.leaders, $0.known) }
        let target = LeasePlacement.assign(
            partitions: Array(known), liveBrokers: members.map(\.nodeId), holders: leaders.mapValues(\.nodeId))
        var gave = false
        for partition in known.sorted() {
            guard let leader = leaders[partition], leader.nodeId == nodeId, let to = target[partition], to != nodeId
            else { continue }
            state.withLock { _ = $0.leaders.removeValue(forKey: partition) }
            for listener in listeners.withLock({ $0 }) { listener.leadershipLost(partition) }
            try storage.handOff(topic: partition.topic, partition: partition.partition, epoch: leader.epoch)
            gave = true
            logger.info("handed off leadership", metadata: ["partition": "\(partition)", "to": "\(to)", "epoch": "\(leader.epoch)"])
        }
        return gave
    }

    /// Topics first, so leases of topics created elsewhere name partitions this broker has opened.
    private func refresh(notify: Bool) throws {
        try storage.syncTopics(only: nil)
        let (brokers, leases) = try storage.membership()
        let members = brokers.map { ClusterMember(nodeId: $0.nodeId, endpoints: Self.endpoints($0.listeners), rack: $0.rack) }
        var leaders: [TopicPartitionKey: PartitionLeader] = [:]
        for lease in leases where lease.live {
            leaders[TopicPartitionKey(lease.topic, lease.partition)] = PartitionLeader(nodeId: lease.holder, epoch: lease.leaderEpoch)
        }
        let known = Set(leases.map { TopicPartitionKey($0.topic, $0.partition) })
        let before = state.withLock { s in
            defer { s = Snapshot(members: members, leaders: leaders, known: known) }
            return s.leaders
        }
        guard notify else { return }
        let nodeId = self.nodeId
        let lost = before.filter { $0.value.nodeId == nodeId && leaders[$0.key] != before[$0.key] }.map(\.key)
        let listeners = self.listeners.withLock { $0 }
        for partition in lost.sorted() {
            logger.info("lost leadership", metadata: ["partition": "\(partition)"])
            for listener in listeners { listener.leadershipLost(partition) }
        }
        // An internal topic created here since the last refresh (on first need): its lease was taken
        // with the rows, so the coordinators hear of it now. A data partition created here needs no
        // announcement: its producer state starts empty.
        let created = leaders.filter {
            $0.value.nodeId == nodeId && before[$0.key] == nil && InternalTopics.names.contains($0.key.topic)
        }
        for (partition, leader) in created.sorted(by: { $0.key < $1.key }) {
            announceGained(partition, epoch: leader.epoch)
        }
    }

    func liveMembers() -> [ClusterMember] { state.withLock { $0.members } }

    func leader(of partition: TopicPartitionKey) -> PartitionLeader? {
        let (leader, known) = state.withLock { ($0.leaders[partition], $0.known.contains(partition)) }
        // Created (or added) here since the last refresh: this broker took its lease in the same
        // transaction, and the next heartbeat renews it.
        let found = known ? leader : storage.leaderEpoch(topic: partition.topic, partition: partition.partition).map {
            PartitionLeader(nodeId: nodeId, epoch: $0)
        }
        if found?.nodeId == nodeId, leasesMayHaveExpired { return nil }
        return found
    }

    /// Whether a session has passed since the last heartbeat that renewed this broker's leases
    /// was sent: the database may count them expired and another broker may lead by now. Until a
    /// heartbeat gets through again this broker claims none of them, so clients asking it are
    /// told no leader is known (and go to the other brokers) instead of being sent back to a
    /// broker that cannot commit; appends are refused by the lease check in any case.
    private var leasesMayHaveExpired: Bool {
        guard let renewed = renewedAtMs.withLock({ $0 }) else { return false }
        return elapsedMs() - renewed > sessionTimeoutMs
    }

    /// Milliseconds since the process's first call, on the clock that sleeps do not stop.
    static let monotonicMs: @Sendable () -> Int64 = {
        let elapsed = origin.duration(to: .now)
        return elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000
    }
    private static let origin = ContinuousClock.now

    func addLeadershipListener(_ listener: any LeadershipListener) { listeners.withLock { $0.append(listener) } }

    func leaderEpochHistory(of partition: TopicPartitionKey) -> LeaderEpochHistory? {
        storage.leaderEpochHistory(topic: partition.topic, partition: partition.partition)
    }

    /// Parses Kafka's `NAME://host:port,...` as registered.
    static func endpoints(_ text: String) -> [String: HostPort] {
        var result: [String: HostPort] = [:]
        for entry in text.split(separator: ",") {
            guard let scheme = entry.range(of: "://") else { continue }
            guard let address = HostPort(parsing: String(entry[scheme.upperBound...])) else { continue }
            result[String(entry[..<scheme.lowerBound])] = address
        }
        return result
    }
}
