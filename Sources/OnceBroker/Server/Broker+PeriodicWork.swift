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
final class ClusterHeartbeat: Sendable {
    /// 0 idle, 1 beating, 2 stopped, 3 beating with a stop waiting for it.
    private let phase = ConditionLock<Int>(value: 0)
    private let timer = NIOLockedValueBox<BrokerTimer?>(nil)
    private let runtime: BrokerRuntime

    init(_ cluster: DatabaseCluster, runtime: BrokerRuntime, intervalMs: Int64) {
        self.runtime = runtime
        let phase = phase
        let started = runtime.repeatingTask(everyMs: intervalMs) {
            _ = try? await runtime.io.perform {
                phase.lock()
                guard phase.value == 0 else { return phase.unlock() }
                phase.unlock(withValue: 1)
                // A beat that finds the node id taken stops the beating for good.
                let alive = cluster.beat()
                phase.lock()
                phase.unlock(withValue: alive && phase.value == 1 ? 0 : 2)
            }
        }
        timer.withLockedValue { $0 = started }
    }

    func stop() async {
        timer.withLockedValue { $0 }?.cancel()
        let phase = phase
        _ = try? await runtime.io.perform {
            phase.lock()
            if phase.value == 1 {
                phase.unlock(withValue: 3)
                phase.lock(whenValue: 2)
            }
            phase.unlock(withValue: 2)
        }
    }
}
