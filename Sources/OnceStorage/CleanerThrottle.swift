import Glibc
import Synchronization

/// Kafka's `log.cleaner.io.max.bytes.per.second`: the cleaner's reads and writes together stay
/// under this rate, so a large clean never starves produce and fetch of disk bandwidth. The rule
/// is pure (`delay`); the throttle sleeps on the cleaner's own thread, never on an event loop.
public final class CleanerThrottle: Sendable {
    /// Bytes per second; nil for no limit.
    public let maxBytesPerSecond: Double?
    private let window = Mutex<(startNs: UInt64?, bytes: Double)>((nil, 0))
    private let stopped = Atomic<Bool>(false)

    public init(maxBytesPerSecond: Double?) {
        self.maxBytesPerSecond = maxBytesPerSecond
    }

    /// Nanoseconds to wait after `bytes` have moved in `elapsedNs`, so the average stays at `rate`.
    static func delay(bytes: Double, elapsedNs: UInt64, rate: Double) -> UInt64 {
        let due = bytes / rate * 1_000_000_000
        return due > Double(elapsedNs) ? UInt64(due - Double(elapsedNs)) : 0
    }

    /// Accounts for `bytes` of cleaner I/O, sleeping as long as the rate requires.
    func account(_ bytes: Int) {
        guard let rate = maxBytesPerSecond, bytes > 0 else { return }
        let now = Self.monotonicNs()
        let wait = window.withLock { w -> UInt64 in
            let start = w.startNs ?? now
            w.startNs = start
            w.bytes += Double(bytes)
            return Self.delay(bytes: w.bytes, elapsedNs: now - start, rate: rate)
        }
        // In slices, so a shutdown never waits out a long throttle.
        var left = wait
        while left > 0 && !stopped.load(ordering: .relaxed) {
            let slice = min(left, 50_000_000)
            var request = timespec(tv_sec: 0, tv_nsec: Int(slice))
            var remaining = timespec()
            while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
            left -= slice
        }
    }

    /// Ends every wait now and from now on: the storage is closing.
    func stop() {
        stopped.store(true, ordering: .relaxed)
    }

    /// Starts a new averaging window: idle time between passes must not be spent as a burst.
    func reset() {
        window.withLock { $0 = (nil, 0) }
    }

    static func monotonicNs() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}
