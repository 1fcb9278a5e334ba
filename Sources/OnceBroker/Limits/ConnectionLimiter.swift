import Synchronization

/// Counts open connections in total and per client address (`max.connections`,
/// `max.connections.per.ip`). A connection over either limit is closed as soon as it is accepted.
final class ConnectionLimiter: Sendable {
    let maxTotal: Int
    let maxPerAddress: Int

    private struct State {
        var total = 0
        var perAddress: [String: Int] = [:]
    }

    private let state = Mutex(State())

    init(maxTotal: Int, maxPerAddress: Int) {
        self.maxTotal = maxTotal
        self.maxPerAddress = maxPerAddress
    }

    enum Refusal: Error, CustomStringConvertible {
        case total(Int)
        case perAddress(String, Int)

        var description: String {
            switch self {
            case .total(let limit): "the broker already has \(limit) connections (max.connections)"
            case .perAddress(let address, let limit):
                "\(address) already has \(limit) connections (max.connections.per.ip)"
            }
        }
    }

    /// Counts the connection in, or says which limit it would break. Each admitted connection is
    /// released exactly once, when it closes.
    func admit(_ address: String) -> Refusal? {
        state.withLock { s in
            if s.total >= maxTotal { return .total(maxTotal) }
            let fromAddress = s.perAddress[address, default: 0]
            if fromAddress >= maxPerAddress { return .perAddress(address, maxPerAddress) }
            s.total += 1
            s.perAddress[address] = fromAddress + 1
            return nil
        }
    }

    func release(_ address: String) {
        state.withLock { s in
            s.total -= 1
            let left = s.perAddress[address, default: 1] - 1
            s.perAddress[address] = left > 0 ? left : nil
        }
    }

    var openConnections: Int { state.withLock { $0.total } }
}
