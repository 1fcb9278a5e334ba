import Logging
import NIOPosix
import OnceBroker
import ServiceLifecycle
import Synchronization

/// Consumer-group lag over time, for the groups page's charts: a bounded series per group, kept
/// in memory only.
final class LagHistory: Sendable {
    struct Sample: Sendable, Codable, Equatable {
        var atMs: Int64
        var totalLag: Int64
    }
    private let samplesKept: Int
    private let series = Mutex<[String: [Sample]]>([:])

    init(samplesKept: Int) {
        self.samplesKept = max(2, samplesKept)
    }

    func record(_ snapshot: BrokerSnapshot) {
        series.withLock { series in
            let live = Set(snapshot.groups.map(\.groupId))
            series = series.filter { live.contains($0.key) }
            for group in snapshot.groups {
                var samples = series[group.groupId, default: []]
                samples.append(Sample(atMs: snapshot.takenAtMs, totalLag: group.totalLag))
                if samples.count > samplesKept { samples.removeFirst(samples.count - samplesKept) }
                series[group.groupId] = samples
            }
        }
    }

    func samples(group: String) -> [Sample] {
        series.withLock { $0[group] ?? [] }
    }

    var all: [String: [Sample]] {
        series.withLock { $0 }
    }
}

/// Takes a snapshot every `interval` until graceful shutdown and records each group's lag; the
/// snapshot takes broker locks, so it runs on the blocking thread pool.
struct LagSampler: Service {
    let view: BrokerView
    let history: LagHistory
    let interval: Duration
    let threadPool: NIOThreadPool
    let logger: Logger

    func run() async throws {
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    let view = self.view
                    if let snapshot = try await threadPool.runIfActive({ try view.snapshot() }) { history.record(snapshot) }
                } catch {
                    logger.warning("console lag sample failed", metadata: ["error": "\(error)"])
                }
                try await Task.sleep(for: interval)
            }
        }
    }
}
