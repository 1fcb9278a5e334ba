import NIOConcurrencyHelpers
import NIOCore

/// Fetch requests parked until new data arrives on one of their partitions (Fetch long-poll). A
/// waiter is removed under the lock by whoever completes it, the append or the timeout, so its
/// promise completes exactly once.
final class FetchWaiters: Sendable {
    struct PartitionKey: Hashable, Sendable {
        var topic: String
        var partition: Int32
    }

    private struct Waiter: Sendable {
        var keys: [PartitionKey]
        var promise: EventLoopPromise<Void>
    }

    private struct State: Sendable {
        var nextId = 0
        var waiters: [Int: Waiter] = [:]
        var byPartition: [PartitionKey: Set<Int>] = [:]
    }

    private let state = NIOLockedValueBox(State())

    /// Registers a waiter; returns its id for `cancel`.
    func register(_ keys: [PartitionKey], promise: EventLoopPromise<Void>) -> Int {
        state.withLockedValue { s in
            let id = s.nextId
            s.nextId += 1
            s.waiters[id] = Waiter(keys: keys, promise: promise)
            for key in keys { s.byPartition[key, default: []].insert(id) }
            return id
        }
    }

    /// Completes the waiter if it is still parked (timeout or an early wake-up).
    func complete(_ id: Int) {
        let waiter = state.withLockedValue { s in Self.remove(id, from: &s) }
        waiter?.promise.succeed()
    }

    /// Wakes every fetch waiting on this partition.
    func notify(_ key: PartitionKey) {
        let woken: [Waiter] = state.withLockedValue { s in
            guard let ids = s.byPartition[key], !ids.isEmpty else { return [] }
            return ids.compactMap { Self.remove($0, from: &s) }
        }
        for w in woken { w.promise.succeed() }
    }

    private static func remove(_ id: Int, from s: inout State) -> Waiter? {
        guard let w = s.waiters.removeValue(forKey: id) else { return nil }
        for key in w.keys {
            s.byPartition[key]?.remove(id)
            if s.byPartition[key]?.isEmpty == true { s.byPartition[key] = nil }
        }
        return w
    }
}
