import Foundation
import Logging
import OnceStorage

/// The thread that reads batches the partitions no longer hold in memory. It has a connection of
/// its own, so a read never waits behind an append round on the committer's connection and an
/// append never waits behind a large read. libpq blocks, so the thread is ours: never a NIO event
/// loop or the Swift cooperative pool.
///
/// Reads queue in order; a broken connection fails the read in flight (the reader retries with
/// its next Fetch) and is replaced on the next one.
final class PostgresReader: @unchecked Sendable {
    private let url: String
    private let schema: String
    private let logger: Logger
    private let condition = NSCondition()
    // Guarded by `condition`.
    private var queue: [(PostgresConnection?) -> Void] = []
    private var stopping = false
    private var stopped = false

    init(url: String, schema: String, logger: Logger) {
        self.url = url
        self.schema = schema
        self.logger = logger
    }

    func start() {
        let thread = Thread { [self] in loop() }
        thread.name = "once-postgres-reader"
        thread.start()
    }

    /// Runs one read on the reader's connection and waits for it.
    func run<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) throws -> T) throws -> T {
        let outcome = BlockingResult<T>()
        condition.lock()
        guard !stopped && !stopping else {
            condition.unlock()
            throw StorageError.io("the postgres engine is closed")
        }
        queue.append { connection in
            guard let connection else {
                outcome.complete(.failure(StorageError.io("postgres unreachable for reads")))
                return
            }
            do {
                outcome.complete(.success(try body(connection)))
            } catch let error as StorageError {
                outcome.complete(.failure(error))
            } catch {
                outcome.complete(.failure(StorageError.io("postgres read: \(error)")))
            }
        }
        condition.signal()
        condition.unlock()
        return try outcome.wait()
    }

    /// Fails what is queued and ends the thread.
    func stop() {
        condition.lock()
        stopping = true
        condition.signal()
        while !stopped { condition.wait() }
        condition.unlock()
    }

    private func loop() {
        var connection: PostgresConnection?
        while true {
            condition.lock()
            while queue.isEmpty && !stopping { condition.wait() }
            if stopping {
                let abandoned = queue
                queue = []
                stopped = true
                condition.broadcast()
                condition.unlock()
                for read in abandoned { read(nil) }
                return
            }
            let read = queue.removeFirst()
            condition.unlock()
            if connection == nil || connection!.isBroken {
                do {
                    connection = try PostgresConnection(url: url, schema: schema)
                } catch {
                    connection = nil
                    logger.warning("postgres reader cannot connect", metadata: ["error": "\(error)"])
                }
            }
            read(connection)
        }
    }
}
