import Synchronization

/// Request bytes held in memory across every connection: read but not yet answered, partial frames
/// included (Kafka's `queued.max.request.bytes` memory pool). When it is spent, connections stop
/// reading from their sockets until requests complete and give bytes back; the kernel's socket
/// buffers then push back on clients. One read may overshoot the limit, never more, so a single
/// request as large as the limit always completes.
final class RequestBytesBudget: Sendable {
    let limit: Int

    private struct State {
        var used = 0
        var waiters: [@Sendable () -> Void] = []
    }

    private let state = Mutex(State())

    init(limit: Int) {
        self.limit = limit
    }

    var used: Int { state.withLock { $0.used } }
    var hasRoom: Bool { state.withLock { $0.used < limit } }

    func charge(_ bytes: Int) {
        state.withLock { $0.used += bytes }
    }

    func release(_ bytes: Int) {
        guard bytes > 0 else { return }
        let woken: [@Sendable () -> Void] = state.withLock { s in
            s.used -= bytes
            precondition(s.used >= 0, "released more request bytes than were charged")
            guard s.used < limit else { return [] }
            defer { s.waiters = [] }
            return s.waiters
        }
        for wake in woken { wake() }
    }

    /// Runs `wake` once there is room: now, or after a release.
    func whenRoom(_ wake: @escaping @Sendable () -> Void) {
        let now: Bool = state.withLock { s in
            if s.used < limit { return true }
            s.waiters.append(wake)
            return false
        }
        if now { wake() }
    }
}
