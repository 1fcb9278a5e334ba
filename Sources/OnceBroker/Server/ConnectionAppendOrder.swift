import NIOCore
import Synchronization

/// Keeps one connection's Produce appends in the order its requests arrived. The connection
/// serves pipelined requests at once, and a Produce v12 transactional write first waits for the
/// coordinator to add its partitions (KIP-890), so without this a producer's second in-flight
/// batch could reach the log before its first and be refused as out of order. Kafka serves a
/// connection's requests one at a time, which orders them for free; here only the appends wait,
/// and only behind an append of the same connection that has not yet run.
final class ConnectionAppendOrder: Sendable {
    private struct Last {
        var id: Int
        var appended: EventLoopFuture<Void>
    }

    private let last = Mutex<Last?>(nil)
    private let nextId = Mutex(0)

    /// The append a Produce arriving now must follow, if it has not run yet.
    var pending: EventLoopFuture<Void>? {
        last.withLock { $0?.appended }
    }

    /// Makes `appended` (it completes once this request's append has run, whatever its outcome)
    /// the one the next Produce on the connection follows. Requests of one connection are served
    /// on its event loop one after another, so reading `pending` and registering cannot interleave
    /// with another Produce of the same connection.
    func register(_ appended: EventLoopFuture<Void>) {
        let id = nextId.withLock { n in
            n += 1
            return n
        }
        last.withLock { $0 = Last(id: id, appended: appended) }
        appended.whenComplete { [self] _ in
            last.withLock { if $0?.id == id { $0 = nil } }
        }
    }
}
