import Dispatch
import Synchronization

/// A result one thread waits for and another delivers: how the synchronous storage calls wait for
/// the connection thread that runs their statement (see `PostgresConnectionThread`).
final class BlockingResult<Value: Sendable>: Sendable {
    private let value = Mutex<Result<Value, any Error>?>(nil)
    private let ready = DispatchSemaphore(value: 0)

    func complete(_ result: Result<Value, any Error>) {
        value.withLock { $0 = result }
        ready.signal()
    }

    func wait() throws -> Value {
        ready.wait()
        return try value.withLock { $0! }.get()
    }
}
