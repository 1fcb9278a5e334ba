import Foundation
import Testing

@testable import OnceStorage

/// The file engine's blocking work runs on the threads it is given (the broker's `--io-threads`
/// pool), never on a queue of its own: under `--flush always` the durability wait's fsync is
/// submitted there and only resumes the waiter.
@Suite("Blocking I/O threads")
struct BlockingIOTests {
    /// Counts the jobs handed to the pool, then runs them on NIO's shared one.
    final class CountingPool: @unchecked Sendable {
        private let lock = NSLock()
        private var submitted = 0
        var count: Int { lock.withLock { submitted } }

        var io: BlockingIO {
            BlockingIO { work in
                self.lock.withLock { self.submitted += 1 }
                BlockingIO.shared.submit(work)
            }
        }
    }

    @Test("under flush always an acknowledgement's fsync runs on the engine's I/O threads, and the waiter resumes durable")
    func durabilityWaitRunsOnTheGivenThreads() async throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let pool = CountingPool()
        let storage = try FileLogStorage(directory: dir.path, flushPolicy: .always, logger: quietLogger, io: pool.io)
        _ = try storage.createTopic(name: "t", partitions: 1, configs: [:])
        let log = try #require(storage.partition(topic: "t", partition: 0))
        let appended = try log.append(TestBatches.batch(records: 3))
        #expect(log.highWatermark == 0, "nothing is fetchable before it is durable")
        let before = pool.count
        try await log.waitDurable(upTo: appended.logEndOffset)
        #expect(pool.count > before, "the fsync went to the given threads")
        #expect(log.highWatermark == appended.logEndOffset)
        try storage.close()
    }

    @Test("perform hands back the work's result or error to the caller")
    func performReturnsTheResult() async throws {
        struct Refused: Error {}
        #expect(try await BlockingIO.shared.perform { 6 * 7 } == 42)
        await #expect(throws: Refused.self) { try await BlockingIO.inline.perform { throw Refused() } }
    }
}
