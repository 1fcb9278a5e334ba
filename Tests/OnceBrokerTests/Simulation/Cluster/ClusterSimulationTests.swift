import Foundation
import Testing

/// Seeds of the cluster simulation: `ONCE_CLUSTER_SIMULATION_SEEDS` (default 300) seeds from
/// `ONCE_CLUSTER_SIMULATION_FIRST_SEED` (default 1), `ONCE_CLUSTER_SIMULATION_STEPS` steps each;
/// `ONCE_CLUSTER_SIMULATION_SEED` runs one seed and prints its trace.
@Suite struct ClusterSimulationTests {
    static let environment = ProcessInfo.processInfo.environment
    static var steps: Int { environment["ONCE_CLUSTER_SIMULATION_STEPS"].flatMap(Int.init) ?? 60 }

    static var seeds: [UInt64] {
        if let one = environment["ONCE_CLUSTER_SIMULATION_SEED"].flatMap(UInt64.init) { return [one] }
        let first = environment["ONCE_CLUSTER_SIMULATION_FIRST_SEED"].flatMap(UInt64.init) ?? 1
        let count = environment["ONCE_CLUSTER_SIMULATION_SEEDS"].flatMap(UInt64.init) ?? 300
        return Array(first..<first + count)
    }

    @Test func seedsHoldEveryInvariant() throws {
        var options = ClusterSimulation.Options()
        options.steps = Self.steps
        var failures: [String] = []
        var totals = (takeovers: 0, crashes: 0, pauses: 0, lostAnswers: 0, acked: 0)
        var network = SimulatedBrokerNetwork.Counts()
        for seed in Self.seeds {
            let simulation = ClusterSimulation(seed: seed, options: options)
            let anomalies = try simulation.run()
            totals.takeovers += simulation.world.database.leaseTakeovers
            totals.crashes += simulation.world.crashes
            totals.pauses += simulation.world.pauses
            totals.lostAnswers += simulation.world.database.lostAnswers
            totals.acked += simulation.acknowledged
            network += simulation.world.network.counts
            if Self.environment["ONCE_CLUSTER_SIMULATION_SEED"] != nil {
                print(simulation.trace.joined(separator: "\n"))
                print(simulation.world.leadershipChanges.joined(separator: "\n"))
                print(simulation.world.database.commitLog.joined(separator: "\n"))
                print(simulation.summary)
            }
            if !anomalies.isEmpty {
                failures.append(
                    "seed \(seed) (\(simulation.summary)): \(anomalies.prefix(5).joined(separator: " | "))\n"
                        + "  replay: ONCE_CLUSTER_SIMULATION_SEED=\(seed) ONCE_CLUSTER_SIMULATION_STEPS=\(Self.steps) swift test --filter ClusterSimulationTests")
            }
        }
        print("cluster simulation: \(Self.seeds.count) seeds, \(totals); between brokers: \(network)")
        #expect(failures.isEmpty, "\(failures.count) seeds failed:\n\(failures.prefix(10).joined(separator: "\n"))")
        // A run that moved no lease and hit no fault proved nothing about failover.
        if Self.seeds.count >= 20 {
            #expect(totals.takeovers > 0 && totals.crashes > 0 && totals.pauses > 0 && totals.lostAnswers > 0 && totals.acked > 0)
            // Nor one whose brokers never sent each other markers and checks through every fault.
            #expect(network.markerRequests > 0 && network.checkRequests > 0 && network.refused > 0)
            #expect(network.lostRequests > 0 && network.lostAnswers > 0 && network.duplicates > 0)
            #expect(network.delayed > 0 && network.timedOut > 0)
        }
    }

    /// A failing seed replays exactly: the same interleaving of every broker's jobs and the same
    /// client history.
    @Test func replay() throws {
        func once() throws -> ([String], [String], String) {
            let simulation = ClusterSimulation(seed: 42, options: ClusterSimulation.Options(), recordsPicks: true)
            _ = try simulation.run()
            return (simulation.world.scheduler.picks, simulation.trace, simulation.summary)
        }
        let (a, b) = (try once(), try once())
        #expect(!a.0.isEmpty)
        #expect(a.0 == b.0)
        #expect(a.1 == b.1)
        #expect(a.2 == b.2)
    }

    /// With the lease epoch condition taken off the database's append, a woken or stale
    /// ex-leader's queued batches land beside the new leader's: the checker must say so.
    @Test func anEpochlessAppendIsCaught() throws {
        var options = ClusterSimulation.Options()
        options.ignoresLeaseEpoch = true
        options.faultChance = 0.3
        // Idempotent producers only: every step writes, so a stale leader's queue meets new writes.
        options.transactionalIds = 0
        options.partitions = 2
        var caught = 0
        var seenByClients = 0
        for seed in UInt64(1)...100 {
            let simulation = ClusterSimulation(seed: seed, options: options)
            if !(try simulation.run()).isEmpty { caught += 1 }
            if !simulation.clientAnomalies.isEmpty {
                seenByClients += 1
                if Self.environment["ONCE_CLUSTER_SIMULATION_TRACE"] != nil {
                    print("seed \(seed): \(simulation.clientAnomalies.prefix(3).joined(separator: " | "))")
                }
            }
        }
        print("epochless append: \(caught) of 100 seeds caught, \(seenByClients) by what the clients saw")
        #expect(caught > 0)
        // Not only the database's ledger: acknowledged records lost or duplicated in the log.
        #expect(seenByClients > 0)
    }

    /// With the network answering every WriteTxnMarkers as written and delivering none, a
    /// coordinator completes transactions whose markers never reached the partitions led
    /// elsewhere: the checker must say so.
    @Test func aMarkerClaimedWrittenIsCaught() throws {
        var options = ClusterSimulation.Options()
        options.claimsRemoteMarkersWritten = true
        var caught = 0
        for seed in UInt64(1)...50 {
            let simulation = ClusterSimulation(seed: seed, options: options)
            let anomalies = try simulation.run()
            if !anomalies.isEmpty {
                caught += 1
                if Self.environment["ONCE_CLUSTER_SIMULATION_TRACE"] != nil {
                    print("seed \(seed): \(anomalies.prefix(3).joined(separator: " | "))")
                }
            }
        }
        print("markers claimed written: \(caught) of 50 seeds caught")
        #expect(caught > 0)
    }
}

extension SimulatedBrokerNetwork.Counts {
    static func += (total: inout Self, run: Self) {
        total.markerRequests += run.markerRequests
        total.checkRequests += run.checkRequests
        total.refused += run.refused
        total.lostRequests += run.lostRequests
        total.lostAnswers += run.lostAnswers
        total.duplicates += run.duplicates
        total.delayed += run.delayed
        total.timedOut += run.timedOut
    }
}
