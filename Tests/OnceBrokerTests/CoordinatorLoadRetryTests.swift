import KafkaProtocol
import Logging
@testable import OnceBroker
import OnceCore
import OnceStorage
import Testing

@Suite("A coordinator whose load throws loads again at the next heartbeat that reaches the database, while it holds the lease")
struct CoordinatorLoadRetryTests {
    @Test("Both coordinators fail to load with the database away, keep the lease, and serve after the heartbeat that gets through")
    func loadRetried() async throws {
        let node = try await Node()
        node.database.unreachableUntil = node.clock.now + 1_000
        node.cluster.announceHeldLeases()
        #expect(node.transactions.load.current == .idle)
        #expect(node.groups.load.current == .idle)
        #expect(node.cluster.leads(TransactionService.partition), "the lease is kept")
        // Still away: the heartbeat fails, so nothing is loaded again yet.
        #expect(node.cluster.beat())
        #expect(node.transactions.load.current == .idle)
        #expect(node.groups.load.current == .idle)
        node.clock.advance(by: 1_000)
        #expect(node.cluster.beat())
        #expect(node.transactions.load.current == .serving)
        #expect(node.groups.load.current == .serving)
        // Loaded once is enough: a later heartbeat leaves the coordinators alone.
        #expect(node.cluster.beat())
        #expect(node.transactions.load.current == .serving)
    }

    @Test("A failed load whose lease another broker took meanwhile is not loaded again")
    func leaseLostBeforeRetry() async throws {
        let node = try await Node()
        node.database.unreachableUntil = node.clock.now + 1_000
        node.cluster.announceHeldLeases()
        #expect(node.transactions.load.current == .idle)
        node.clock.advance(by: 1_000)
        let far = node.clock.now + 600_000
        node.database.brokers[2] = .init(incarnation: 2, listeners: "PLAINTEXT://127.0.0.1:19092", rack: nil, expiresAt: far)
        let epoch = node.database.leases[TransactionService.partition]!.epoch + 1
        node.database.leases[TransactionService.partition] = .init(holder: 2, epoch: epoch, expiresAt: far)
        #expect(node.cluster.beat())
        #expect(node.cluster.leader(of: TransactionService.partition) == PartitionLeader(nodeId: 2, epoch: epoch))
        #expect(node.transactions.load.current == .idle, "loaded for a lease another broker holds")
        // The group coordinator's lease is still this broker's: it loads.
        #expect(node.groups.load.current == .serving)
    }

    /// One broker's cluster view and coordinators over the simulated database, which holds both
    /// internal topics (the broker takes their leases when it opens the database).
    struct Node {
        let clock = SimulatedClock()
        let database: SimulatedDatabase
        let cluster: DatabaseCluster
        let transactions: TransactionService
        let groups: GroupCoordinator

        init() async throws {
            let logger = Logger(label: "test")
            database = SimulatedDatabase(clock: clock)
            for (index, name) in [InternalTopics.consumerOffsets, InternalTopics.transactionState].enumerated() {
                database.topics[name] = TopicMetadata(
                    name: name, id: KafkaUUID(high: 7, low: UInt64(index)), partitionCount: 1, configs: [:])
                database.partitions[TopicPartitionKey(name, 0)] = .init()
            }
            let scheduler = SimulatedScheduler(seed: 1, clock: clock)
            let storage = try SimulatedClusterStorage(nodeId: 1, database: database, loop: scheduler.makeLoop(owner: 1))
            let clock = clock
            cluster = DatabaseCluster(
                storage: storage, nodeId: 1, sessionTimeoutMs: 6_000, logger: logger, incarnation: 1, elapsedMs: { clock.now })
            try await cluster.register(advertised: "PLAINTEXT://127.0.0.1:19091", rack: nil, sleep: { _ in })
            groups = try GroupCoordinator(
                storage: storage, config: GroupConfig(), logger: logger, clock: { clock.now }, servesAtStart: false)
            transactions = try TransactionService(
                storage: storage, producers: try ProducerRegistry(storage: storage, logger: logger), waiters: FetchWaiters(),
                config: TransactionCoordinator.Config(), flushAlways: false, logger: logger, clock: { clock.now },
                servesAtStart: false, cluster: cluster, runtime: BrokerRuntime(clock: { clock.now }))
            cluster.addLeadershipListener(groups)
            cluster.addLeadershipListener(transactions)
        }
    }
}
