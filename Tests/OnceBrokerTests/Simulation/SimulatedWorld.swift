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
/// engine's page-cache model, one request at a time. Faults are what a real machine does to it:
/// a process crash restarts the broker on the same storage (the page cache survives); a power
/// cut restarts it on what was synced; requests and responses are lost, duplicated or delayed by
/// the simulated clients around it.
final class SimulatedWorld {
    let clock = SimulatedClock()
    let flushPolicy: FlushPolicy
    private(set) var storage: MemoryLogStorage
    private(set) var broker: Broker
    private(set) var crashes = 0
    private(set) var powerLosses = 0
    private var correlationId: Int32 = 0
    static let eventLoop = BrokerHarness.group.next()

    init(flushPolicy: FlushPolicy, topics: [String: Int32], configs: [String: [String: String]] = [:]) throws {
        self.flushPolicy = flushPolicy
        storage = MemoryLogStorage(flushPolicy: flushPolicy)
        for (name, partitions) in topics.sorted(by: { $0.key < $1.key }) {
            try storage.createTopic(name: name, partitions: partitions, configs: configs[name] ?? [:])
        }
        broker = try Self.start(storage, flushPolicy: flushPolicy, clock: clock)
    }

    private static func start(_ storage: MemoryLogStorage, flushPolicy: FlushPolicy, clock: SimulatedClock) throws -> Broker {
        var config = BrokerConfig()
        config.storage = .memory
        config.flushPolicy = flushPolicy
        config.autoCreateTopics = false
        var logger = Logger(label: "simulation")
        logger.logLevel = .critical
        return try Broker(config: config, storage: storage, clusterId: "simulation", logger: logger, clock: { clock.now })
    }

    /// kill -9: the process's memory is gone, the page cache is not.
    func crash() throws {
        crashes += 1
        broker = try Self.start(storage, flushPolicy: flushPolicy, clock: clock)
    }

    /// A power cut: synced data survives, and of the rest what the kernel happened to write back.
    func powerLoss(writeback: (Int) -> Int) throws {
        powerLosses += 1
        storage = storage.afterPowerLoss(writeback: writeback)
        broker = try Self.start(storage, flushPolicy: flushPolicy, clock: clock)
    }

    /// The broker's periodic work at the current simulated time.
    func tick(snapshot: Bool) async throws {
        try await broker.transactions.checkTimeouts(now: clock.now)
        if snapshot {
            broker.snapshotCoordinators()
            // Producer state too, so a restart loads a snapshot a later cleaner pass outdated.
            broker.producers.snapshotAll()
        }
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

    /// Hands a frame to the current broker and decodes the answer (nil: acks=0, or a closed connection).
    func deliver<Response: KafkaResponse>(_ frame: Frame, as _: Response.Type) async -> Response? {
        guard let future = try? broker.handle(frame: frame.bytes, eventLoop: Self.eventLoop),
            var response = (try? await future.get()) ?? nil
        else { return nil }
        _ = response.readInteger(as: Int32.self)
        guard (try? ResponseHeader(
            from: &response, version: KafkaHeaderVersions.response(apiKey: frame.apiKey, apiVersion: frame.version))) != nil
        else { return nil }
        return try? Response(from: &response, version: frame.version)
    }
}
