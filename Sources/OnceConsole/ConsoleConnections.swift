import Synchronization

/// Console connections open at once. The console shares the broker's process and its file
/// descriptors, so a tab storm or a client that never closes must not starve the Kafka listener.
final class ConsoleConnections: Sendable {
    let limit: Int
    private let open = Mutex(0)

    init(limit: Int) {
        self.limit = limit
    }

    /// Counts the connection in if there is room; each admitted connection is released once, when it closes.
    func admit() -> Bool {
        open.withLock { open in
            guard open < limit else { return false }
            open += 1
            return true
        }
    }

    func release() {
        open.withLock { $0 -= 1 }
    }
}
