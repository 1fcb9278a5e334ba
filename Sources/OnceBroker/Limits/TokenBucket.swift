import Synchronization

/// A rate limit that allows bursts: tokens refill continuously at `ratePerSecond` up to `burst`,
/// and an action costing n tokens happens only if n are there. The caller passes the time, so the
/// rule is tested without a clock.
struct TokenBucket: Sendable {
    let ratePerSecond: Double
    let burst: Double
    private(set) var tokens: Double
    private var lastMs: Int64?

    init(ratePerSecond: Double, burst: Double) {
        self.ratePerSecond = ratePerSecond
        self.burst = burst
        self.tokens = burst
    }

    /// Takes `cost` tokens if available. A cost above the burst can never be paid, so it is allowed
    /// when the bucket is full (and empties it) rather than refused forever.
    mutating func tryTake(_ cost: Double, nowMs: Int64) -> Bool {
        if let lastMs, nowMs > lastMs {
            tokens = min(burst, tokens + Double(nowMs - lastMs) * ratePerSecond / 1000)
        }
        lastMs = max(lastMs ?? nowMs, nowMs)
        if tokens >= cost || (cost > burst && tokens >= burst) {
            tokens = max(0, tokens - cost)
            return true
        }
        return false
    }
}

/// The broker's auto-creation pace: a token bucket of partitions read against an injected clock.
final class AutoCreateLimiter: Sendable {
    private let bucket: Mutex<TokenBucket>
    private let clock: @Sendable () -> Int64
    /// Refusals since the last one logged, and when that was: a client naming thousands of topics
    /// gets one log line a second, not one per topic.
    private let refusals = Mutex<(count: Int, lastLoggedMs: Int64?)>((0, nil))

    init(partitionsPerSecond: Double, clock: @escaping @Sendable () -> Int64) {
        let rate = max(0, partitionsPerSecond)
        bucket = Mutex(TokenBucket(ratePerSecond: rate, burst: max(1, rate)))
        self.clock = clock
    }

    /// Counts a refusal; returns how many to report if a log line is due now, else nil.
    func refusalToLog() -> Int? {
        let now = clock()
        return refusals.withLock { r in
            r.count += 1
            if let last = r.lastLoggedMs, now - last < 1_000 { return nil }
            defer { r = (0, now) }
            return r.count
        }
    }

    func allow(partitions: Int) -> Bool {
        let now = clock()
        return bucket.withLock { $0.tryTake(Double(partitions), nowMs: now) }
    }
}
