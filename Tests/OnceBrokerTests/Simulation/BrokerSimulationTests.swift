import Foundation
import OnceStorage
import Testing

/// The production broker under seeded faults. `ONCE_SIMULATION_SEEDS` sets how many seeds each
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

    static func run(_ options: BrokerSimulation.Options, label: String) async throws {
        var options = options
        if let steps { options.steps = steps }
        var failures: [String] = []
        for seed in seeds {
            let simulation = try BrokerSimulation(seed: seed, options: options)
            let anomalies = try await simulation.run()
            if !anomalies.isEmpty {
                failures.append("seed \(seed) (\(label); replay with ONCE_SIMULATION_SEED=\(seed)): " + anomalies.prefix(5).joined(separator: "; "))
            }
        }
        #expect(failures.isEmpty, "\(failures.count) failing seeds:\n\(failures.prefix(10).joined(separator: "\n"))")
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

    @Test("a seed replays exactly")
    func replay() async throws {
        var options = BrokerSimulation.Options()
        options.flushPolicy = .always
        options.powerLossChance = 0.02
        let first = try BrokerSimulation(seed: 42, options: options)
        _ = try await first.run()
        let second = try BrokerSimulation(seed: 42, options: options)
        _ = try await second.run()
        #expect(first.history.reads.mapValues { $0.map(\.value) } == second.history.reads.mapValues { $0.map(\.value) })
        #expect(first.world.crashes == second.world.crashes && first.world.powerLosses == second.world.powerLosses)
        #expect(first.history.reads.values.map(\.count).reduce(0, +) > 0, "the run read something")
    }
}

