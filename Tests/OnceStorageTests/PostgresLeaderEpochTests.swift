import Foundation
import KafkaProtocol
import OnceCore
import Testing

@testable import OncePostgres
@testable import OnceStorage

/// The postgres engine's leader epoch history: an entry for every epoch a lease was taken at, with
/// the log end it began at, found again by an engine that opens the schema later, and cut from the
/// start when the log start moves.
@Suite("PostgresLogStorage leader epochs")
struct PostgresLeaderEpochTests {
    static func entries(_ storage: PostgresLogStorage, _ partition: Int32 = 0) -> [[Int64]] {
        (storage.leaderEpochHistory(topic: "t", partition: partition)?.entries ?? []).map { [Int64($0.epoch), $0.startOffset] }
    }

    @Test func everyEpochTakenIsRecordedAtTheLogEndItBeganAt() async throws {
        let (first, drop) = try Engine.makePostgresStorage()
        defer { drop() }
        try first.createTopic(name: "t", partitions: 2, configs: [:])
        #expect(Self.entries(first) == [[0, 0]] && Self.entries(first, 1) == [[0, 0]])
        let log = try #require(first.partition(topic: "t", partition: 0))
        try await log.waitDurable(upTo: try log.appendBatches(2).last!.logEndOffset)

        // A takeover records its epoch in its own transaction, at the committed end.
        let second = try PostgresLogStorage(url: Engine.postgresURL!, nodeId: 2, schema: first.schema, logger: quietLogger)
        #expect(try second.takeOver(topic: "t", partition: 0, sessionTimeoutMs: 10_000) == 1)
        #expect(Self.entries(second) == [[0, 0], [1, 2]])
        let taken = try #require(second.partition(topic: "t", partition: 0))
        try await taken.waitDurable(upTo: try taken.appendBatches(3).last!.logEndOffset)
        // Deleting records past epoch 0's offsets drops its row; epoch 1 keeps the new start.
        _ = try taken.advanceLogStart(to: 3)
        try second.close()

        // A restart takes the lease at one epoch more and loads the history from the database.
        let third = try PostgresLogStorage(url: Engine.postgresURL!, nodeId: 2, schema: first.schema, logger: quietLogger)
        defer { try? third.close() }
        #expect(Self.entries(third) == [[1, 2], [2, 5]])
        let history = try #require(third.leaderEpochHistory(topic: "t", partition: 0)).truncatedFromStart(3)
        #expect(history.entries == [.init(epoch: 1, startOffset: 3), .init(epoch: 2, startOffset: 5)])
        #expect(history.endOffset(for: 0, logEndOffset: 5) == (0, 3))
        #expect(history.endOffset(for: 1, logEndOffset: 5) == (1, 5))
        #expect(history.endOffset(for: 2, logEndOffset: 5) == (2, 5))
        // Partition 1 stayed with node 1, whose lease this engine does not take.
        #expect(Self.entries(third, 1) == [[0, 0]])
    }

    @Test func aDeletedTopicLeavesNoHistoryForOneCreatedUnderItsName() async throws {
        let (storage, drop) = try Engine.makePostgresStorage()
        defer { drop() }
        try storage.createTopic(name: "t", partitions: 1, configs: [:])
        let log = try #require(storage.partition(topic: "t", partition: 0))
        try await log.waitDurable(upTo: try log.appendBatches(2).last!.logEndOffset)
        try storage.close()
        let reopened = try PostgresLogStorage(url: Engine.postgresURL!, nodeId: 1, schema: storage.schema, logger: quietLogger)
        defer { try? reopened.close() }
        #expect(Self.entries(reopened) == [[0, 0], [1, 2]])
        try reopened.deleteTopic(name: "t")
        #expect(reopened.leaderEpochHistory(topic: "t", partition: 0) == nil)
        try reopened.createTopic(name: "t", partitions: 1, configs: [:])
        #expect(Self.entries(reopened) == [[0, 0]])
    }
}
