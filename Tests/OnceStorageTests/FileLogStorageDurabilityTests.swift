import Foundation
import KafkaProtocol
import NIOCore
import Testing

@testable import OnceStorage

/// Flush policies of the file engine.
@Suite("FileLogStorage durability")
struct FileLogStorageDurabilityTests {
    let dir: TemporaryDirectory

    init() throws {
        dir = try TemporaryDirectory()
    }

    @Test func alwaysSharesSyncsAmongConcurrentWaiters() async throws {
        defer { dir.remove() }
        let storage = try FileLogStorage(directory: dir.path, flushPolicy: .always, logger: quietLogger)
        try storage.createTopic(name: "t", partitions: 1, configs: [:])
        let log = try #require(storage.partition(topic: "t", partition: 0) as? FilePartitionLog)
        let producers = 200
        try await withThrowingTaskGroup(of: Int64.self) { group in
            for i in 0..<producers {
                group.addTask {
                    let result = try log.append(TestBatches.batch(tag: i))
                    try await log.waitDurable(upTo: result.logEndOffset)
                    // Whatever this producer saw acknowledged is on disk by now.
                    #expect(log.durableOffset >= result.logEndOffset)
                    return result.baseOffset
                }
            }
            var offsets: [Int64] = []
            for try await offset in group { offsets.append(offset) }
            #expect(offsets.sorted() == (0..<Int64(producers)).map { $0 })
        }
        #expect(log.durableOffset == Int64(producers))
        #expect(log.syncRounds >= 1)
        #expect(log.syncRounds < producers)
        try storage.close()
    }

    @Test func alwaysWaitsOnlyForWhatExists() async throws {
        defer { dir.remove() }
        let storage = try FileLogStorage(directory: dir.path, flushPolicy: .always, logger: quietLogger)
        try storage.createTopic(name: "t", partitions: 1, configs: [:])
        let log = try #require(storage.partition(topic: "t", partition: 0) as? FilePartitionLog)
        try await log.waitDurable(upTo: 0)
        #expect(log.syncRounds == 0)
        _ = try log.append(TestBatches.batch())
        try await log.waitDurable(upTo: 1_000)
        #expect(log.durableOffset == 1)
        #expect(log.syncRounds == 1)
        try await log.waitDurable(upTo: 1)
        #expect(log.syncRounds == 1)
        try storage.close()
    }

    @Test func waitingOnADeletedTopicFails() async throws {
        defer { dir.remove() }
        let storage = try FileLogStorage(directory: dir.path, flushPolicy: .always, logger: quietLogger)
        try storage.createTopic(name: "t", partitions: 1, configs: [:])
        let log = try #require(storage.partition(topic: "t", partition: 0))
        _ = try log.append(TestBatches.batch())
        try storage.deleteTopic(name: "t")
        await #expect(throws: StorageError.unknownTopic("t")) { try await log.waitDurable(upTo: 1) }
        try storage.close()
    }

    @Test func intervalSyncsInTheBackground() async throws {
        defer { dir.remove() }
        let storage = try FileLogStorage(directory: dir.path, flushPolicy: .interval(milliseconds: 10), logger: quietLogger)
        try storage.createTopic(name: "t", partitions: 1, configs: [:])
        let log = try #require(storage.partition(topic: "t", partition: 0) as? FilePartitionLog)
        _ = try log.append(TestBatches.batch())
        // Acknowledgement does not wait under this policy.
        try await log.waitDurable(upTo: 1)
        var waited = 0
        while log.durableOffset < 1 && waited < 5_000 {
            try await Task.sleep(for: .milliseconds(10))
            waited += 10
        }
        #expect(log.durableOffset == 1)
        #expect(log.syncRounds >= 1)
        try storage.close()
    }

    @Test func noneSyncsOnlyOnClose() throws {
        defer { dir.remove() }
        let storage = try FileLogStorage(directory: dir.path, flushPolicy: .none, logger: quietLogger)
        try storage.createTopic(name: "t", partitions: 1, configs: [:])
        let log = try #require(storage.partition(topic: "t", partition: 0) as? FilePartitionLog)
        _ = try log.append(TestBatches.batch())
        #expect(log.syncRounds == 0)
        try storage.close()
        #expect(log.syncRounds == 1)
        #expect(throws: StorageError.self) { try log.append(TestBatches.batch()) }
    }
}
