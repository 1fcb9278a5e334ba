import Synchronization

/// Failed SASL authentications per client address in a sliding minute: once an address has
/// `maxFailures` of them, its further attempts fail unchecked until the oldest ages out. The
/// caller passes the time, so the rule is tested without a clock.
final class AuthenticationFailureLimiter: Sendable {
    let maxFailures: Int
    static let windowMs: Int64 = 60_000
    /// Bounds the table against a flood of distinct addresses: past this many, entries whose
    /// failures have all aged out are dropped.
    private static let pruneAbove = 10_000
    private let failures = Mutex<[String: [Int64]]>([:])

    init(maxFailures: Int) {
        self.maxFailures = max(1, maxFailures)
    }

    func isLimited(_ address: String, nowMs: Int64) -> Bool {
        failures.withLock { table in
            let recent = (table[address] ?? []).filter { nowMs - $0 < Self.windowMs }
            table[address] = recent.isEmpty ? nil : recent
            return recent.count >= maxFailures
        }
    }

    func recordFailure(_ address: String, nowMs: Int64) {
        failures.withLock { table in
            var recent = (table[address] ?? []).filter { nowMs - $0 < Self.windowMs }
            recent.append(nowMs)
            table[address] = Array(recent.suffix(maxFailures))
            if table.count > Self.pruneAbove {
                table = table.filter { $0.value.contains { nowMs - $0 < Self.windowMs } }
            }
        }
    }
}
