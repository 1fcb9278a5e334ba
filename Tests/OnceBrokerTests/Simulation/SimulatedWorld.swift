import KafkaProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
@testable import OnceBroker
import OnceCore
import OnceStorage

extension SplitMix64 {
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &self) < p }
}

/// The simulated time every broker instance reads.
final class SimulatedClock: Sendable {
    private let ms = NIOLockedValueBox<Int64>(1_700_000_000_000)
    var now: Int64 { ms.withLockedValue { $0 } }
    func advance(by delta: Int64) { ms.withLockedValue { $0 += delta } }
}

/// The production broker (request handling, coordinators, producer state) over the memory
/// engine's page-cache model, with every job it starts on one seeded `SimulatedScheduler`: many
/// requests can be in flight at once, on one connection (pipelined, served in arrival order) or
/// on several, and they interleave as the seed picks. Faults are what a real machine does to it:
/// a process crash restarts the broker on the same storage (the page cache survives) and drops
/// every request in flight; a power cut restarts it on what was synced; requests and responses
/// are lost, duplicated or delayed by the simulated clients around it.
final class SimulatedWorld {
    let clock = SimulatedClock()
    let flushPolicy: FlushPolicy
    private var rng: SplitMix64
    private let random: RandomSource
    private(set) var storage: MemoryLogStorage
    private(set) var broker: Broker
    private(set) var scheduler: SimulatedScheduler
    private var connections: [String: (loop: SimulatedEventLoop, session: ConnectionSession)] = [:]
    private(set) var crashes = 0
    private(set) var powerLosses = 0
    private var correlationId: Int32 = 0
    /// A counter of broker-side moments: when each request was read and when it was answered.
    private let moments = NIOLockedValueBox(0)
    /// The request `wait` last returned the answer of.
    private(set) var lastWaited: InFlight?
    /// Requests sent without waiting for their answer (pipelined, or let go by the network late):
    /// their handlers run at the next `collect()` once answered, or never if the broker crashed.
    private var background: [(request: InFlight, handler: (ByteBuffer?) -> Void)] = []
    /// Every pick of the scheduler across restarts, for replay checks.
    private(set) var picks: [String] = []
    let recordsPicks: Bool

    init(
        seed: UInt64, flushPolicy: FlushPolicy, topics: [String: Int32], configs: [String: [String: String]] = [:],
        recordsPicks: Bool = false
    ) throws {
        self.flushPolicy = flushPolicy
        self.recordsPicks = recordsPicks
        rng = SplitMix64(seed: seed ^ 0x9e37_79b9_7f4a_7c15)
        random = RandomSource(SplitMix64(seed: seed ^ 0x2545_f491_4f6c_dd1d))
        let clock = clock
        storage = MemoryLogStorage(flushPolicy: flushPolicy, random: random, clock: { clock.now })
        for (name, partitions) in topics.sorted(by: { $0.key < $1.key }) {
            try storage.createTopic(name: name, partitions: partitions, configs: configs[name] ?? [:])
        }
        scheduler = SimulatedScheduler(seed: rng.next(), clock: clock)
        scheduler.recordsPicks = recordsPicks
        broker = try Self.start(storage, flushPolicy: flushPolicy, clock: clock, random: random, scheduler: scheduler)
    }

    private static func start(
        _ storage: MemoryLogStorage, flushPolicy: FlushPolicy, clock: SimulatedClock, random: RandomSource,
        scheduler: SimulatedScheduler
    ) throws -> Broker {
        var config = BrokerConfig()
        config.storage = .memory
        config.flushPolicy = flushPolicy
        config.autoCreateTopics = false
        // A downgraded group parks classic JoinGroups until its rebalance timer fires, which the
        // group coordinator's tick finds only when the clock moves on; upgrades and mixed groups
        // are what it exercises.
        config.groupConsumerMigrationPolicy = .upgrade
        // Often enough that a run takes several snapshots (the default is 30 s).
        config.producerSnapshotIntervalMs = Self.snapshotIntervalMs
        var logger = Logger(label: "simulation")
        logger.logLevel = .critical
        let broker = try Broker(
            config: config, storage: storage, clusterId: "simulation", logger: logger,
            runtime: BrokerRuntime(
                clock: { clock.now }, random: random, taskExecutor: scheduler, timers: scheduler, io: .inline,
                administration: .inline))
        // The same periodic work `BrokerService` starts, on the scheduler's simulated time.
        _ = try broker.startPeriodicWork()
        return broker
    }

    static let snapshotIntervalMs: Int64 = 3_000

    /// A new process: a new scheduler (the old one's jobs die with the old process) and new
    /// connections.
    private func restart() throws {
        picks += scheduler.picks
        background.removeAll()
        connections.removeAll()
        scheduler = SimulatedScheduler(seed: rng.next(), clock: clock)
        scheduler.recordsPicks = recordsPicks
        broker = try Self.start(storage, flushPolicy: flushPolicy, clock: clock, random: random, scheduler: scheduler)
    }

    /// kill -9: the process's memory is gone, the page cache is not.
    func crash() throws {
        crashes += 1
        try restart()
    }

    /// A power cut: synced data survives, and of the rest what the kernel happened to write back.
    func powerLoss(writeback: (Int) -> Int) throws {
        powerLosses += 1
        storage = storage.afterPowerLoss(writeback: writeback)
        try restart()
    }

    /// The picks of the whole run so far.
    var allPicks: [String] { picks + scheduler.picks }

    /// Moves the clock on and lets the broker's timers that came due fire (the transaction
    /// timeout check, the group coordinator's ticks, snapshots), racing whatever is in flight.
    func advanceClock(by milliseconds: Int64) {
        clock.advance(by: milliseconds)
        scheduler.runReady()
    }

    /// The transactional ids the coordinator's latest snapshot holds.
    func snapshottedTransactionalIds() throws -> Set<String> {
        guard let bytes = try storage.readState(named: TransactionService.snapshotName) else { return [] }
        return Set(try TransactionLogSnapshot(decoding: bytes).transactions.map(\.transactionalId))
    }

    /// An encoded request, ready to be delivered now, later, or twice.
    struct Frame {
        var bytes: ByteBuffer
        var apiKey: Int16
        var version: Int16
        var correlationId: Int32
    }

    func frame<R: KafkaRequest>(_ request: R, version: Int16) -> Frame {
        correlationId &+= 1
        return Frame(
            bytes: BrokerHarness.frame(request, version: version, correlationId: correlationId), apiKey: R.apiKey,
            version: version, correlationId: correlationId)
    }

    /// A named client connection: its requests are served in the order they were sent.
    func connection(_ name: String) -> SimulatedEventLoop {
        connectionState(name).loop
    }

    private func connectionState(_ name: String) -> (loop: SimulatedEventLoop, session: ConnectionSession) {
        if let connection = connections[name] { return connection }
        let connection = (scheduler.makeLoop(), ConnectionSession.plaintext())
        connections[name] = connection
        return connection
    }

    /// A request on its way: answered (a framed response, or nil for none) once `answer` is set.
    final class InFlight: @unchecked Sendable {
        let frame: Frame
        var answer: ByteBuffer??
        /// The moments the broker read it and answered it: what happened between the two may
        /// have happened before or after its effect.
        var servedAt = Int.max
        var answeredAt = Int.max
        init(frame: Frame) { self.frame = frame }
    }

    /// Puts a frame on a connection; the broker reads it when the scheduler picks that job.
    func submit(_ frame: Frame, on connectionName: String) -> InFlight {
        let request = InFlight(frame: frame)
        let (loop, session) = connectionState(connectionName)
        let broker = broker
        let moments = moments
        let moment: @Sendable () -> Int = { moments.withLockedValue { m in m += 1; return m } }
        loop.execute {
            request.servedAt = moment()
            guard let future = try? broker.handle(frame: frame.bytes, eventLoop: loop, session: session) else {
                request.answeredAt = moment()
                request.answer = .some(nil)
                return
            }
            future.whenComplete { result in
                request.answeredAt = moment()
                request.answer = .some((try? result.get()) ?? nil)
            }
        }
        return request
    }

    /// Runs the scheduler (everything in flight interleaving) until `request` is answered.
    func wait<Response: KafkaResponse>(_ request: InFlight, as _: Response.Type) -> Response? {
        scheduler.run { request.answer != nil }
        lastWaited = request
        return Self.decode(request.answer!, request.frame, as: Response.self)
    }

    /// Sends without waiting: `handler` sees the answer at a later `collect()`.
    func send<Response: KafkaResponse>(
        _ frame: Frame, on connectionName: String, as _: Response.Type,
        then handler: @escaping (Response?, _ servedAt: Int) -> Void
    ) {
        let request = submit(frame, on: connectionName)
        background.append((request, { handler(Self.decode($0, frame, as: Response.self), request.servedAt) }))
    }

    /// Hands the answers that have come back to their handlers, in the order they were sent.
    func collect() {
        let answered = background.filter { $0.request.answer != nil }
        background.removeAll { $0.request.answer != nil }
        for (request, handler) in answered { handler(request.answer!) }
    }

    /// Lets what is in flight run until it waits for time, and hands over the answers: a point where
    /// no request is half done, for a check that reads the log twice and compares.
    func quiesce() {
        scheduler.runReady()
        collect()
    }

    /// Lets everything in flight finish.
    func settle() {
        scheduler.runUntilIdle()
        collect()
    }

    /// Hands a frame to the current broker on `connectionName` and decodes the answer (nil: acks=0,
    /// or a closed connection), while everything else in flight runs too.
    func deliver<Response: KafkaResponse>(_ frame: Frame, on connectionName: String = "client", as _: Response.Type) async -> Response? {
        wait(submit(frame, on: connectionName), as: Response.self)
    }

    private static func decode<Response: KafkaResponse>(_ answer: ByteBuffer?, _ frame: Frame, as _: Response.Type) -> Response? {
        guard var response = answer else { return nil }
        _ = response.readInteger(as: Int32.self)
        guard (try? ResponseHeader(
            from: &response, version: KafkaHeaderVersions.response(apiKey: frame.apiKey, apiVersion: frame.version))) != nil
        else { return nil }
        return try? Response(from: &response, version: frame.version)
    }
}
