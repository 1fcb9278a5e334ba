import Foundation
import OnceStorage
import Testing

/// The production broker under seeded faults and interleavings of concurrent requests (every job
/// on one seeded scheduler, see `SimulatedScheduler`). `ONCE_SIMULATION_SEEDS` sets how many seeds each
/// configuration runs and `ONCE_SIMULATION_STEPS` how long each is (CI keeps both small;
/// scripts/soak.sh runs far more); `ONCE_SIMULATION_SEED` replays one seed exactly, and
/// `ONCE_SIMULATION_TRACE=1` prints its every step.
@Suite("Broker simulation")
struct BrokerSimulationTests {
    static var seeds: [UInt64] {
        let environment = ProcessInfo.processInfo.environment
        if let one = environment["ONCE_SIMULATION_SEED"].flatMap(UInt64.init) { return [one] }
        let count = environment["ONCE_SIMULATION_SEEDS"].flatMap(Int.init) ?? 500
        let first = environment["ONCE_SIMULATION_FIRST_SEED"].flatMap(UInt64.init) ?? 1
        return (0..<UInt64(count)).map { first + $0 }
    }

    static let steps = ProcessInfo.processInfo.environment["ONCE_SIMULATION_STEPS"].flatMap(Int.init)

    /// Runs every seed and returns the failing ones' reports and how many held-back EndTxns
    /// reached the coordinator while their producer's next transaction was open.
    static func runSeeds(_ options: BrokerSimulation.Options, label: String, seeds: [UInt64] = seeds) async throws
        -> (failures: [String], lateEnds: Int, lateProduces: Int)
    {
        var options = options
        if let steps { options.steps = steps }
        var failures: [String] = []
        var lateEnds = 0
        var lateProduces = 0
        for seed in seeds {
            let simulation = try BrokerSimulation(seed: seed, options: options)
            let anomalies = try await simulation.run()
            lateEnds += simulation.lateEndsWhileNextOpen
            lateProduces += simulation.lateV2Produces
            if !anomalies.isEmpty {
                failures.append("seed \(seed) (\(label); replay with ONCE_SIMULATION_SEED=\(seed)): " + anomalies.prefix(5).joined(separator: "; "))
            }
        }
        return (failures, lateEnds, lateProduces)
    }

    static func run(_ options: BrokerSimulation.Options, label: String) async throws {
        let failures = try await runSeeds(options, label: label).failures
        #expect(failures.isEmpty, "\(failures.count) failing seeds:\n\(failures.prefix(10).joined(separator: "\n"))")
    }

    /// The delayed-request configurations run a fifth of the seeds: they only raise delays.
    static var delaySeeds: [UInt64] { Array(seeds.prefix(max(1, seeds.count / 5))) }

    @Test("transactions V2 only, many delayed EndTxn and Produce: the late requests are fenced and exactly once holds")
    func delayedRequestsUnderTransactionsV2() async throws {
        var options = BrokerSimulation.Options()
        options.transactionsV2Share = 1
        options.delayChance = 0.1
        let (failures, lateEnds, lateProduces) = try await Self.runSeeds(
            options, label: "transactions V2, delays", seeds: Self.delaySeeds)
        #expect(failures.isEmpty, "\(failures.count) failing seeds:\n\(failures.prefix(10).joined(separator: "\n"))")
        print("transactions V2 with delays: \(lateEnds) late EndTxns met a later open transaction, \(lateProduces) late Produce requests came after the next transaction began")
        #expect(lateEnds > 0 || Self.delaySeeds.count < 20, "no delayed EndTxn met a later open transaction: the run proved nothing")
        #expect(lateProduces > 0 || Self.delaySeeds.count < 20, "no delayed Produce came after the next transaction began")
    }

    /// Kafka's V1 hole, shown rather than fixed (no V1 broker can tell one transaction of an epoch
    /// from the next): a held-back EndTxn of a V1 producer commits or aborts the transaction the
    /// producer opened after it.
    @Test("transactions V1 with delayed EndTxn: the simulator finds KAFKA-17754's hole")
    func v1DelayedEndTxnHole() async throws {
        var options = BrokerSimulation.Options()
        options.transactionsV2Share = 0
        options.delayV1EndTxn = true
        options.delayChance = 0.1
        let seeds = Self.delaySeeds
        let (failures, _, _) = try await Self.runSeeds(options, label: "transactions V1, delayed EndTxn", seeds: seeds)
        let holes = failures.filter { $0.contains("KAFKA-17754") }
        print("transactions V1 with delayed EndTxn: \(holes.count) of \(seeds.count) seeds hit the hole, \(failures.count) failed")
        #expect(!holes.isEmpty || seeds.count < 20, "no seed of \(seeds.count) hit the V1 hole")
    }

    @Test("flush none: crashes, lost, duplicated and delayed requests, zombies; exactly once holds")
    func crashesUnderFlushNone() async throws {
        try await Self.run(BrokerSimulation.Options(), label: "flush none")
    }

    @Test("flush always: power cuts too; nothing acknowledged is lost and exactly once holds")
    func powerLossUnderFlushAlways() async throws {
        var options = BrokerSimulation.Options()
        options.flushPolicy = .always
        options.powerLossChance = 0.01
        try await Self.run(options, label: "flush always")
    }

    @Test("flush none with power cuts (what the kernel wrote back survives): no transaction hangs or stays prepared, no duplicate")
    func powerLossUnderFlushNone() async throws {
        var options = BrokerSimulation.Options()
        options.powerLossChance = 0.01
        try await Self.run(options, label: "flush none, power cuts")
    }

    @Test("compacted output cleaned between steps, abort markers removed, crashes and power cuts too: read_committed sees the same latest value per key before and after every pass and every restart")
    func compactionBetweenSteps() async throws {
        var options = BrokerSimulation.Options()
        options.flushPolicy = .always
        options.powerLossChance = 0.01
        options.cleanerChance = 0.05
        if let steps = Self.steps { options.steps = steps }
        var failures: [String] = []
        var passes = 0
        var removed = 0
        var abortMarkers = 0
        let seeds = Array(Self.seeds.prefix(max(1, Self.seeds.count / 5)))
        for seed in seeds {
            let simulation = try BrokerSimulation(seed: seed, options: options)
            let anomalies = try await simulation.run()
            passes += simulation.cleanerPasses
            removed += simulation.removedByCleaner
            abortMarkers += simulation.abortMarkersRemoved
            if !anomalies.isEmpty {
                failures.append("seed \(seed) (compaction; replay with ONCE_SIMULATION_SEED=\(seed)): " + anomalies.prefix(5).joined(separator: "; "))
            }
        }
        #expect(failures.isEmpty, "\(failures.count) failing seeds:\n\(failures.prefix(10).joined(separator: "\n"))")
        print("compaction: \(passes) cleaning passes removed \(removed) read_committed records and \(abortMarkers) abort markers over \(seeds.count) seeds")
        #expect(passes > 0 && removed > 0, "the cleaner never removed anything a reader saw: the run proved nothing")
        #expect(abortMarkers > 0, "no abort marker was removed: the index's consistency went untested")
    }

    /// The same seed twice: the scheduler picks the same jobs in the same order (every
    /// interleaving of the requests in flight), and the broker's answers, as the history records
    /// them, are the same.
    @Test("a seed replays exactly: the same interleaving and the same history")
    func replay() async throws {
        var options = BrokerSimulation.Options()
        options.flushPolicy = .always
        options.powerLossChance = 0.02
        options.recordsPicks = true
        let first = try BrokerSimulation(seed: 42, options: options)
        _ = try await first.run()
        let second = try BrokerSimulation(seed: 42, options: options)
        _ = try await second.run()
        #expect(first.world.allPicks == second.world.allPicks)
        #expect(first.history.events.map { "\($0)" } == second.history.events.map { "\($0)" })
        #expect(first.history.reads.mapValues { $0.map(\.value) } == second.history.reads.mapValues { $0.map(\.value) })
        #expect(first.world.crashes == second.world.crashes && first.world.powerLosses == second.world.powerLosses)
        #expect(first.history.reads.values.map(\.count).reduce(0, +) > 0, "the run read something")
        // Interleavings happened: some picks chose among several runnable jobs.
        let choices = first.world.allPicks.filter { !$0.hasSuffix("/1") }.count
        #expect(choices > 0, "every pick was the only runnable job: nothing ran concurrently")
    }
}

