import Foundation
import NIOConcurrencyHelpers

/// The broker's periodic work, all on the runtime's timers (see `BrokerRuntime`), so the
/// simulator runs these very timers at simulated time instead of calling the work itself.
extension Broker {
    /// Cancels the broker's periodic work at shutdown.
    struct PeriodicWork: Sendable {
        fileprivate var timers: [BrokerTimer]

        func cancel() {
            for timer in timers { timer.cancel() }
        }
    }

    /// Starts retention, the producer-state and coordinator snapshots, producer expiry, the
    /// transaction timeout check and the group coordinator's ticks. Work that writes or deletes
    /// files runs on the runtime's I/O threads.
    func startPeriodicWork() throws -> PeriodicWork {
        let runtime = runtime
        let config = config
        let logger = logger
        var timers: [BrokerTimer] = []
        timers.append(
            runtime.repeatingTask(everyMs: config.retentionCheckIntervalMs) { [self] in
                _ = try? await runtime.io.perform { self.storage.enforceRetention(nowMs: runtime.clock()) }
            })
        timers.append(
            runtime.repeatingTask(everyMs: config.producerSnapshotIntervalMs) { [self] in
                _ = try? await runtime.io.perform {
                    self.producers.snapshotAll()
                    self.snapshotCoordinators()
                }
            })
        timers.append(
            runtime.repeating(everyMs: config.producerIdExpirationCheckIntervalMs) { [self] in
                producers.expireProducers(nowMs: runtime.clock(), expirationMs: config.producerIdExpirationMs)
            })
        timers.append(
            runtime.repeatingTask(everyMs: config.transactionTimeoutCheckIntervalMs) { [self] in
                do {
                    try await transactions.checkTimeouts(now: runtime.clock())
                } catch {
                    logger.error("aborting timed-out transactions failed", metadata: ["error": "\(error)"])
                }
            })
        try groups.start(on: runtime, retentionCheckMs: config.offsetsRetentionCheckIntervalMs)
        return PeriodicWork(timers: timers)
    }

    /// Stops what `startPeriodicWork` started; the group coordinator answers its parked requests.
    func stopPeriodicWork(_ work: PeriodicWork) {
        work.cancel()
        groups.stop()
    }
}

/// A database cluster member's heartbeat on the runtime's timers. The beat is a database round
/// trip, so it runs on the I/O threads; `stop` waits for a beat in progress, so none lands after
/// the broker deregistered.
final class ClusterHeartbeat: @unchecked Sendable {
    private enum Phase { case idle, beating, stopped }
    // `phase` is only touched with `condition` locked, never across the beat itself.
    private let condition = NSCondition()
    private var phase = Phase.idle
    private let timer = NIOLockedValueBox<BrokerTimer?>(nil)
    private let runtime: BrokerRuntime

    init(_ cluster: DatabaseCluster, runtime: BrokerRuntime, intervalMs: Int64) {
        self.runtime = runtime
        let started = runtime.repeatingTask(everyMs: intervalMs) { [self] in
            _ = try? await runtime.io.perform { self.beat(cluster) }
        }
        timer.withLockedValue { $0 = started }
    }

    private func beat(_ cluster: DatabaseCluster) {
        condition.lock()
        guard phase == .idle else { return condition.unlock() }
        phase = .beating
        condition.unlock()
        // A beat that finds the node id taken stops the beating for good.
        let alive = cluster.beat()
        condition.lock()
        if phase == .beating { phase = alive ? .idle : .stopped }
        condition.broadcast()
        condition.unlock()
    }

    func stop() async {
        timer.withLockedValue { $0 }?.cancel()
        _ = try? await runtime.io.perform { [self] in
            condition.lock()
            while phase == .beating { condition.wait() }
            phase = .stopped
            condition.unlock()
        }
    }
}
