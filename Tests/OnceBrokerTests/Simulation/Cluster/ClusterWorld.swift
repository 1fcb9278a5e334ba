import Foundation
import KafkaProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
@testable import OnceBroker
import OnceCore
import OnceStorage

/// Two or three production brokers, each with its own `BrokerRuntime` and its own production
/// `DatabaseCluster` (membership, heartbeats, lease placement, takeover, hand-off), over one
/// `SimulatedDatabase`, every job of every broker on one seeded `SimulatedScheduler`. Each broker
/// process is an owner of jobs there, so it can be paused (its jobs wait while the others run and
/// take its leases) and SIGKILLed (its jobs are dropped; the database keeps what it committed).
final class ClusterWorld: @unchecked Sendable {
    static let sessionTimeoutMs: Int64 = 6_000
    static let heartbeatIntervalMs: Int64 = 2_000
    /// How long a simulated client waits for an answer before it gives the request up.
    static let requestTimeoutMs: Int64 = 4_000

    let clock = SimulatedClock()
    let database: SimulatedDatabase
    let scheduler: SimulatedScheduler
    /// What the brokers send each other: markers to partition leaders, KIP-890 checks to the coordinator.
    let network: SimulatedBrokerNetwork
    private var rng: SplitMix64
    private let random: RandomSource

    final class Node {
        let nodeId: Int32
        let owner: Int
        let storage: SimulatedClusterStorage
        var broker: Broker?
        var cluster: DatabaseCluster?
        var alive = true
        var paused = false
        var leaving = false
        init(nodeId: Int32, owner: Int, storage: SimulatedClusterStorage) {
            self.nodeId = nodeId
            self.owner = owner
            self.storage = storage
        }
    }

    private(set) var nodes: [Int32: Node] = [:]
    private var nextOwner = 1
    private var connections: [String: (loop: SimulatedEventLoop, session: ConnectionSession)] = [:]
    private var correlationId: Int32 = 0
    private let clientLoop: SimulatedEventLoop
    private(set) var crashes = 0
    private(set) var pauses = 0
    private(set) var handOffs = 0
    /// Every leadership change the brokers' cluster views announced, for the trace.
    var leadershipChanges: [String] = []

    /// The broker that pauses right after it next starts serving a request.
    var pausesWhenServing: Int32?

    init(seed: UInt64, recordsPicks: Bool = false) {
        rng = SplitMix64(seed: seed ^ 0x9e37_79b9_7f4a_7c15)
        random = RandomSource(SplitMix64(seed: seed ^ 0x2545_f491_4f6c_dd1d))
        database = SimulatedDatabase(clock: clock)
        scheduler = SimulatedScheduler(seed: rng.next(), clock: clock)
        scheduler.recordsPicks = recordsPicks
        clientLoop = scheduler.makeLoop(owner: 0)
        network = SimulatedBrokerNetwork(scheduler: scheduler, seed: seed)
        network.target = { [unowned self] nodeId in
            guard let node = nodes[nodeId], node.alive, let broker = node.broker else { return nil }
            return (node.owner, broker)
        }
    }

    /// Creates topics as an operator does before the brokers serve (its leases go to no one yet:
    /// the first broker takes them when it opens the database).
    func createTopic(_ name: String, partitions: Int32) {
        database.topics[name] = TopicMetadata(name: name, id: KafkaUUID(high: 99, low: UInt64(partitions)), partitionCount: partitions, configs: [:])
        for p in 0..<partitions { database.partitions[TopicPartitionKey(name, p)] = .init() }
    }

    static func listeners(_ nodeId: Int32) -> String { "PLAINTEXT://127.0.0.1:\(19_090 + Int(nodeId))" }

    /// Starts a broker process as `BrokerService.run` does: opens the engine, registers (waiting
    /// out its own stale row on the simulated clock), builds the broker, announces the leases it
    /// holds, and heartbeats every interval. Returns once it serves, or false if it could not.
    @discardableResult
    func start(_ nodeId: Int32) -> Bool {
        let owner = nextOwner
        nextOwner += 1
        let engineLoop = scheduler.makeLoop(owner: owner)
        guard let storage = try? SimulatedClusterStorage(nodeId: nodeId, database: database, loop: engineLoop) else { return false }
        let node = Node(nodeId: nodeId, owner: owner, storage: storage)
        nodes[nodeId] = node
        var logger = Logger(label: "cluster-simulation")
        // ONCE_CLUSTER_SIMULATION_LOG=1 shows the brokers' warnings (with the node id), for a replay.
        let level = ProcessInfo.processInfo.environment["ONCE_CLUSTER_SIMULATION_LOG"]
        logger.logLevel = level == "1" ? .warning : level == "2" ? .debug : .critical
        logger[metadataKey: "node"] = "\(nodeId)"
        let cluster = DatabaseCluster(
            storage: storage, nodeId: nodeId, sessionTimeoutMs: Self.sessionTimeoutMs, logger: logger,
            incarnation: Int64(bitPattern: rng.next() | 1))
        cluster.addLeadershipListener(LeadershipLog(nodeId: nodeId, world: self))
        let clock = clock
        let scheduler = scheduler
        var config = BrokerConfig()
        config.storage = .postgres
        config.flushPolicy = .always
        config.nodeId = nodeId
        config.autoCreateTopics = false
        config.groupConsumerMigrationPolicy = .upgrade
        // As long as the clients wait for an answer: a coordinator or leader that is away fails
        // a request to it within one client request, not after Kafka's 30 s.
        config.interBrokerRequestTimeoutMs = Self.requestTimeoutMs
        // Everything the broker waits on runs on the scheduler, owned by this broker's process: its
        // timers (a marker retry's backoff) on its engine loop, its blocking work inline, its
        // requests to the other brokers over the simulated network.
        var processRuntime = BrokerRuntime(
            clock: { clock.now }, random: random, taskExecutor: scheduler.lane(owner: owner),
            timers: ProcessTimers(loop: engineLoop), io: .inline, administration: .inline)
        processRuntime.interBroker = network.transport(
            from: nodeId, owner: owner, loop: engineLoop, requestTimeoutMs: config.interBrokerRequestTimeoutMs)
        let runtime = processRuntime
        let outcome = NIOLockedValueBox<Result<Broker, any Error>?>(nil)
        runtime.task(on: engineLoop) { [config, logger] in
            try await cluster.register(advertised: Self.listeners(nodeId), rack: nil, sleep: { ms in
                await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                    _ = scheduler.schedule(on: engineLoop.id, afterMs: ms) { c.resume() }
                }
            })
            let broker = try Broker(config: config, storage: storage, clusterId: "cluster-simulation", logger: logger, runtime: runtime, cluster: cluster)
            cluster.announceHeldLeases()
            return broker
        }.whenComplete { result in outcome.withLockedValue { $0 = result } }
        let deadline = clock.now + 3 * Self.sessionTimeoutMs
        let wake = scheduler.schedule(on: clientLoop.id, afterMs: deadline - clock.now) {}
        scheduler.run { outcome.withLockedValue { $0 } != nil || clock.now >= deadline }
        _ = scheduler.cancel(timer: wake)
        guard case .success(let broker) = outcome.withLockedValue({ $0 }) else {
            scheduler.kill(owner: owner)
            node.alive = false
            return false
        }
        node.broker = broker
        node.cluster = cluster
        heartbeat(node, on: engineLoop)
        timeouts(node, on: engineLoop)
        return true
    }

    private func heartbeat(_ node: Node, on loop: SimulatedEventLoop) {
        _ = scheduler.schedule(on: loop.id, afterMs: Self.heartbeatIntervalMs) { [self] in
            guard node.alive, !node.leaving, let cluster = node.cluster else { return }
            guard cluster.beat() else { return }
            heartbeat(node, on: loop)
        }
    }

    /// The transaction coordinator's timeout check, as the broker's periodic task runs it.
    private func timeouts(_ node: Node, on loop: SimulatedEventLoop) {
        _ = scheduler.schedule(on: loop.id, afterMs: 1_000) { [self] in
            guard node.alive, let broker = node.broker else { return }
            _ = broker.runtime.task(on: loop) { try await broker.transactions.checkTimeouts(now: broker.clock()) }
            timeouts(node, on: loop)
        }
    }

    /// SIGKILL: the process and everything in its memory are gone; what it committed is not.
    func kill(_ nodeId: Int32) {
        guard let node = nodes[nodeId], node.alive else { return }
        crashes += 1
        stop(node)
    }

    /// The process ends: its jobs are dropped and it reaches the database no more.
    private func stop(_ node: Node) {
        node.alive = false
        node.storage.kill()
        scheduler.resume(owner: node.owner)
        scheduler.kill(owner: node.owner)
    }

    /// SIGSTOP: none of the broker's jobs run until `wake`.
    func pause(_ nodeId: Int32) {
        guard let node = nodes[nodeId], node.alive, !node.paused else { return }
        pauses += 1
        node.paused = true
        scheduler.pause(owner: node.owner)
    }

    func wake(_ nodeId: Int32) {
        guard let node = nodes[nodeId], node.paused else { return }
        node.paused = false
        scheduler.resume(owner: node.owner)
    }

    /// A graceful shutdown: the broker deregisters (its leases are released at once) and stops.
    func leave(_ nodeId: Int32) {
        guard let node = nodes[nodeId], node.alive, !node.paused, let cluster = node.cluster else { return }
        handOffs += 1
        node.leaving = true
        cluster.deregister()
        stop(node)
    }

    /// Lets simulated time pass while every runnable job runs (heartbeats, takeovers, rounds).
    func pass(ms: Int64) {
        let deadline = clock.now + ms
        let wake = scheduler.schedule(on: clientLoop.id, afterMs: ms) {}
        let clock = clock
        scheduler.run { clock.now >= deadline }
        _ = scheduler.cancel(timer: wake)
    }

    var liveNodes: [Int32] { nodes.values.filter { $0.alive && $0.broker != nil }.map(\.nodeId).sorted() }

    // MARK: Requests

    func frame<R: KafkaRequest>(_ request: R, version: Int16) -> SimulatedWorld.Frame {
        correlationId &+= 1
        return SimulatedWorld.Frame(
            bytes: BrokerHarness.frame(request, version: version, correlationId: correlationId), apiKey: R.apiKey,
            version: version, correlationId: correlationId)
    }

    /// Sends a request to one broker on the client's connection to it and waits, as a client
    /// does, up to its request timeout. Nil: no answer (the broker is down, paused or slow).
    func request<R: KafkaRequest, Response: KafkaResponse>(
        _ request: R, version: Int16, to nodeId: Int32, from client: String, as _: Response.Type
    ) -> Response? {
        guard let node = nodes[nodeId], node.alive, let broker = node.broker else { return nil }
        let frame = frame(request, version: version)
        let key = "\(client)@\(node.owner)"
        if connections[key] == nil { connections[key] = (scheduler.makeLoop(owner: node.owner), .plaintext()) }
        let (loop, session) = connections[key]!
        let answer = NIOLockedValueBox<ByteBuffer??>(nil)
        loop.execute { [self] in
            let future = try? broker.handle(frame: frame.bytes, eventLoop: loop, session: session)
            if pausesWhenServing == nodeId {
                // SIGSTOP in the middle of a request: what it appended waits in the paused
                // broker's queue for a commit round that runs only once it wakes.
                pausesWhenServing = nil
                pause(nodeId)
            }
            guard let future else {
                answer.withLockedValue { $0 = .some(nil) }
                return
            }
            future.whenComplete { result in answer.withLockedValue { $0 = .some((try? result.get()) ?? nil) } }
        }
        let deadline = clock.now + Self.requestTimeoutMs
        let wake = scheduler.schedule(on: clientLoop.id, afterMs: Self.requestTimeoutMs) {}
        let clock = clock
        scheduler.run { answer.withLockedValue { $0 } != nil || clock.now >= deadline || !node.alive }
        _ = scheduler.cancel(timer: wake)
        guard let bytes = answer.withLockedValue({ $0 }), var response = bytes else { return nil }
        _ = response.readInteger(as: Int32.self)
        guard (try? ResponseHeader(
            from: &response, version: KafkaHeaderVersions.response(apiKey: frame.apiKey, apiVersion: frame.version))) != nil
        else { return nil }
        return try? Response(from: &response, version: frame.version)
    }
}

/// Records what each broker's `DatabaseCluster` tells its listeners, internal partitions only.
final class LeadershipLog: LeadershipListener, @unchecked Sendable {
    let nodeId: Int32
    weak var world: ClusterWorld?
    init(nodeId: Int32, world: ClusterWorld) {
        self.nodeId = nodeId
        self.world = world
    }
    func leadershipGained(_ partition: TopicPartitionKey, epoch: Int32) throws {
        guard InternalTopics.names.contains(partition.topic), let world else { return }
        world.leadershipChanges.append("[\(world.clock.now)] \(nodeId) gained \(partition) at \(epoch)")
    }
    func leadershipLost(_ partition: TopicPartitionKey) {
        guard InternalTopics.names.contains(partition.topic), let world else { return }
        world.leadershipChanges.append("[\(world.clock.now)] \(nodeId) lost \(partition)")
    }
}

/// A simulated broker process's timers: those the broker starts without a request's event loop
/// (its own waits, such as a marker retry's backoff) go on a loop the process owns, so they stop
/// with it when it is paused or killed, and the clock may jump to them like to any request's timer.
struct ProcessTimers: BrokerTimers {
    let loop: SimulatedEventLoop

    func schedule(afterMs delayMs: Int64, on eventLoop: (any EventLoop)?, _ work: @escaping @Sendable () -> Void) -> BrokerTimer {
        loop.scheduler.schedule(afterMs: delayMs, on: eventLoop ?? loop, work)
    }
}
