import Foundation
import KafkaProtocol
import Testing

@testable import OncePostgres
@testable import OnceStorage

/// What only the postgres engine promises: what committed is found again by a new engine on the
/// same schema, nothing is readable before it commits, and a second engine fences the first once
/// it takes the lease.
@Suite("PostgresLogStorage")
struct PostgresLogStorageTests {
    @Test func aReopenedEngineFindsTopicsBatchesBoundsAndDocuments() async throws {
        let (first, drop) = try Engine.makePostgresStorage()
        defer { drop() }
        let schema = first.schema
        let meta = try first.createTopic(name: "t", partitions: 2, configs: ["retention.ms": "-1"])
        let log = try #require(first.partition(topic: "t", partition: 1))
        let appended = try log.appendBatches(4, records: 2)
        try await log.waitDurable(upTo: appended.last!.logEndOffset)
        try log.advanceLogStart(to: 3)
        try first.writeState(named: "doc", [1, 2, 3])
        let epoch = try #require(first.leaderEpoch(topic: "t", partition: 1))
        try first.close()

        let second = try PostgresLogStorage(url: Engine.postgresURL!, nodeId: 1, schema: schema, logger: quietLogger)
        defer { try? second.close() }
        #expect(second.topic(named: "t") == meta)
        let reopened = try #require(second.partition(topic: "t", partition: 1))
        #expect(reopened.logStartOffset == 3 && reopened.logEndOffset == 8 && reopened.highWatermark == 8)
        #expect(try TestBatches.offsets(try reopened.read(from: 3, maxBytes: 1 << 20, limitOffset: .max)) == [2...3, 4...5, 6...7])
        #expect(try second.readState(named: "doc") == [1, 2, 3])
        // Every start takes the lease again, one epoch higher.
        #expect(second.leaderEpoch(topic: "t", partition: 1) == epoch + 1)
    }

    @Test func waitDurableCommitsAndTheHighWatermarkFollows() async throws {
        let (storage, drop) = try Engine.makePostgresStorage()
        defer { drop() }
        try storage.createTopic(name: "t", partitions: 1, configs: [:])
        let log = try #require(storage.partition(topic: "t", partition: 0))
        let result = try log.append(TestBatches.batch(records: 3))
        #expect(log.logEndOffset == 3)
        try await log.waitDurable(upTo: result.logEndOffset)
        #expect(log.highWatermark == 3)
        #expect(storage.roundTrips.appends >= 1)
    }

    @Test func aSecondEngineLeavesTheLeaseUntilItTakesItAndThenFencesTheFirst() async throws {
        let (first, drop) = try Engine.makePostgresStorage()
        defer { drop() }
        try first.createTopic(name: "t", partitions: 1, configs: [:])
        let log = try #require(first.partition(topic: "t", partition: 0))
        try await log.waitDurable(upTo: try log.append(TestBatches.batch(tag: 1)).logEndOffset)

        // Starting takes no lease another node holds: the first still commits.
        let second = try PostgresLogStorage(url: Engine.postgresURL!, nodeId: 2, schema: first.schema, logger: quietLogger)
        defer { try? second.close() }
        try await log.waitDurable(upTo: try log.append(TestBatches.batch(tag: 2)).logEndOffset)
        // No broker row names node 1 here, so its lease counts as abandoned and is taken.
        let epoch = try #require(first.leaderEpoch(topic: "t", partition: 0))
        #expect(try second.takeOver(topic: "t", partition: 0, sessionTimeoutMs: 10_000) == epoch + 1)
        let refused = try log.append(TestBatches.batch(tag: 3))
        await #expect(throws: StorageError.self) { try await log.waitDurable(upTo: refused.logEndOffset) }
        #expect(throws: StorageError.notLeader("t-0: another broker holds the lease")) { try log.append(TestBatches.batch(tag: 3)) }
        #expect(log.highWatermark == 2)
        #expect(throws: StorageError.notLeader("t-0: another broker holds the lease")) {
            try log.read(from: 0, maxBytes: 1 << 20, limitOffset: .max)
        }

        let taken = try #require(second.partition(topic: "t", partition: 0))
        #expect(taken.logEndOffset == 2)
        try await taken.waitDurable(upTo: try taken.append(TestBatches.batch(tag: 4)).logEndOffset)
        let batches = try TestBatches.decode(try taken.read(from: 0, maxBytes: 1 << 20, limitOffset: .max))
        #expect(batches.map { Array($0.records[0].value!.prefix(4)) } == ["tag1", "tag2", "tag4"].map { Array($0.utf8) })
    }

    @Test func anExLeaderWritesNoDocumentAboutThePartitionAndTrimsNothing() async throws {
        let (first, drop) = try Engine.makePostgresStorage()
        defer { drop() }
        try first.createTopic(name: "t", partitions: 1, configs: [:])
        let log = try #require(first.partition(topic: "t", partition: 0))
        let appended = try log.appendBatches(4, records: 1)
        try await log.waitDurable(upTo: appended.last!.logEndOffset)
        // While it leads, the document lands.
        try first.writeState(named: "snapshot", [1], describing: log)
        #expect(try first.readState(named: "snapshot") == [1])

        let second = try PostgresLogStorage(url: Engine.postgresURL!, nodeId: 2, schema: first.schema, logger: quietLogger)
        defer { try? second.close() }
        let epoch = try #require(first.leaderEpoch(topic: "t", partition: 0))
        #expect(try second.takeOver(topic: "t", partition: 0, sessionTimeoutMs: 10_000) == epoch + 1)
        let taken = try #require(second.partition(topic: "t", partition: 0))
        try second.writeState(named: "snapshot", [2], describing: taken)

        // The first has not noticed yet: its snapshot and its trim must both find the lease gone.
        #expect(throws: StorageError.self) { try first.writeState(named: "snapshot", [3], describing: log) }
        #expect(try second.readState(named: "snapshot") == [2])
        #expect(throws: StorageError.self) { try log.append(TestBatches.batch(tag: 5)) }
        // Unconditional documents (the cluster's own) are still anyone's to write.
        try first.writeState(named: "cluster-doc", [4])
        #expect(try second.readState(named: "cluster-doc") == [4])
    }

    @Test func anExLeadersDeleteRecordsIsRefusedAndTrimsNothing() async throws {
        let (first, drop) = try Engine.makePostgresStorage()
        defer { drop() }
        try first.createTopic(name: "t", partitions: 1, configs: [:])
        let log = try #require(first.partition(topic: "t", partition: 0))
        let appended = try log.appendBatches(4, records: 1)
        try await log.waitDurable(upTo: appended.last!.logEndOffset)
        let second = try PostgresLogStorage(url: Engine.postgresURL!, nodeId: 2, schema: first.schema, logger: quietLogger)
        defer { try? second.close() }
        let epoch = try #require(first.leaderEpoch(topic: "t", partition: 0))
        #expect(try second.takeOver(topic: "t", partition: 0, sessionTimeoutMs: 10_000) == epoch + 1)
        #expect(throws: StorageError.self) { try log.advanceLogStart(to: 2) }
        // What the table holds, whatever either engine has in memory.
        let c = try PostgresConnection(url: Engine.postgresURL!, schema: first.schema)
        #expect(try c.query("SELECT log_start_offset FROM partition_state WHERE topic = 't'").int(0, 0) == 0)
        #expect(try c.query("SELECT count(*) FROM batches WHERE topic = 't'").int(0, 0) == 4)
    }

    @Test func aCommitWhoseAnswerWasLostIsFoundNotWrittenTwice() async throws {
        let (storage, drop) = try Engine.makePostgresStorage()
        defer { drop() }
        try storage.createTopic(name: "t", partitions: 1, configs: [:])
        let log = try #require(storage.partition(topic: "t", partition: 0))
        storage.loseAppendAnswers(1)
        // Rounds start only when someone waits, so the first round is the one the waiter sees.
        storage.setLinger(seconds: 3600)
        let first = try log.append(TestBatches.batch(records: 2, tag: 1))
        // The waiter cannot know whether it landed, so it is told so.
        await #expect(throws: StorageError.self) { try await log.waitDurable(upTo: first.logEndOffset) }
        // The retry (what a producer's retry of the same batch waits for) finds it committed.
        try await log.waitDurable(upTo: first.logEndOffset)
        #expect(log.highWatermark == 2)
        let second = try log.append(TestBatches.batch(records: 1, tag: 2))
        try await log.waitDurable(upTo: second.logEndOffset)
        try storage.close()

        let reopened = try PostgresLogStorage(url: Engine.postgresURL!, nodeId: 1, schema: storage.schema, logger: quietLogger)
        defer { try? reopened.close() }
        let again = try #require(reopened.partition(topic: "t", partition: 0))
        #expect(try TestBatches.offsets(try again.read(from: 0, maxBytes: 1 << 20, limitOffset: .max)) == [0...1, 2...2])
    }

    @Test func anUnreachableDatabaseFailsTheStart() throws {
        #expect(throws: StorageError.self) {
            try PostgresLogStorage(url: "postgres://nobody@127.0.0.1:1/none?connect_timeout=2", nodeId: 1, logger: quietLogger)
        }
    }
}
