/// When the processor commits its open transaction: after `maxRecords` records or once it has
/// been open for `maxInterval`, whichever comes first. Larger transactions amortise the commit's
/// round trips (the seed's main throughput advice); shorter ones cut downstream latency, since
/// read_committed consumers see nothing before the commit.
public struct CommitPolicy: Hashable, Sendable {
    /// Default: 1000.
    public var maxRecords: Int
    /// Default: 100 ms.
    public var maxInterval: Duration

    public init(maxRecords: Int = 1_000, maxInterval: Duration = .milliseconds(100)) {
        precondition(maxRecords > 0, "maxRecords must be positive")
        self.maxRecords = maxRecords
        self.maxInterval = maxInterval
    }

    public func shouldCommit(recordsInTransaction: Int, openedAt: ContinuousClock.Instant?, now: ContinuousClock.Instant) -> Bool {
        guard recordsInTransaction > 0, let openedAt else { return false }
        return recordsInTransaction >= maxRecords || now - openedAt >= maxInterval
    }

    /// How long the processor may wait for more input before the interval runs out.
    public func remainingWait(openedAt: ContinuousClock.Instant?, now: ContinuousClock.Instant, idle: Duration) -> Duration {
        guard let openedAt else { return idle }
        return max(.zero, min(idle, maxInterval - (now - openedAt)))
    }
}
