import Metrics

extension Timer {
    /// Records the time since `start` on the monotonic clock the client already uses for its
    /// deadlines, so no Dispatch clock is read beside it.
    func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        let (seconds, attoseconds) = elapsed.components
        recordNanoseconds(seconds * 1_000_000_000 + attoseconds / 1_000_000_000)
    }
}
