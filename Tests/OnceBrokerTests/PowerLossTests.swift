import KafkaProtocol
import NIOCore
@testable import OnceBroker
import OnceCore
import OnceStorage
import Testing

/// What survives a power cut: the memory engine keeps only synced appends across
/// `afterPowerLoss()`, so these tests see exactly what an acknowledged request left on disk.
@Suite("Power loss")
struct PowerLossTests {
    typealias H = BrokerHarness
    typealias Txn = TransactionRequestTests.Txn

    static func harness(_ storage: MemoryLogStorage) -> H {
        H(storage: storage) { config in
            config.flushPolicy = storage.flushPolicy
        }
    }

    static func describe(_ h: H, _ ids: [String]) async throws -> [DescribeTransactionsResponse.TransactionState] {
        var req = DescribeTransactionsRequest()
        req.transactionalIds = ids
        return try #require(try await h.send(req, version: 0)).transactionStates
    }

    static func addOffsets(_ h: H, _ tx: Txn, group: String) async throws -> Int16 {
        var req = AddOffsetsToTxnRequest()
        req.transactionalId = tx.id
        req.producerId = tx.producerId
        req.producerEpoch = tx.epoch
        req.groupId = group
        return try #require(try await h.send(req, version: 3)).errorCode
    }

    static func txnCommit(_ h: H, _ tx: Txn, group: String, topic: String, offset: Int64) async throws -> Int16 {
        var partition = TxnOffsetCommitRequest.TxnOffsetCommitRequestPartition()
        partition.partitionIndex = 0
        partition.committedOffset = offset
        var t = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic()
        t.name = topic
        t.partitions = [partition]
        var req = TxnOffsetCommitRequest()
        req.transactionalId = tx.id
        req.groupId = group
        req.producerId = tx.producerId
        req.producerEpoch = tx.epoch
        req.topics = [t]
        return try #require(try await h.send(req, version: 3)).topics[0].partitions[0].errorCode
    }

    @Test("a coordinator snapshot keeps every transactional id through a power cut, even under flush none")
    func snapshotSurvivesLostTail() async throws {
        let storage = MemoryLogStorage(flushPolicy: .none)
        let h = Self.harness(storage)
        try storage.createTopic(name: "out", partitions: 1, configs: [:])
        var a = Txn(h: h, id: "a")
        _ = try await a.initialize()
        var b = Txn(h: h, id: "b")
        _ = try await b.initialize()
        #expect(try await b.addPartitions("out", [0]) == [0])
        #expect(try await b.produce("out", ["b1"]).errorCode == 0)
        h.broker.snapshotCoordinators()
        // Written after the snapshot, never synced: gone with the power.
        var c = Txn(h: h, id: "c")
        _ = try await c.initialize()

        let restarted = Self.harness(storage.afterPowerLoss())
        let states = try await Self.describe(restarted, ["a", "b"])
        #expect(states.map(\.errorCode) == [0, 0], "ids the snapshot holds are known after the cut")
        #expect(states.map(\.transactionState) == ["Empty", "Ongoing"])
        // The open transaction can still end, so its partition's LSO moves on.
        b = Txn(h: restarted, id: "b", producerId: b.producerId, epoch: b.epoch, sequence: [:])
        #expect(try await b.end(commit: false) == 0)
        // And a restart after more appends still replays them (the snapshot was written again at the end).
        var d = Txn(h: restarted, id: "d")
        #expect(try await d.initialize().errorCode == 0)
        let crashed = Self.harness(restarted.storage)
        #expect(try await Self.describe(crashed, ["a", "b", "d"]).map(\.errorCode) == [0, 0, 0])
    }

    @Test("a consumer-offsets snapshot keeps every group's offsets through a power cut, even under flush none")
    func offsetsSnapshotSurvivesLostTail() async throws {
        let storage = MemoryLogStorage(flushPolicy: .none)
        let h = Self.harness(storage)
        try storage.createTopic(name: "in", partitions: 1, configs: [:])
        #expect(try await GroupRequestTests.commit(h, group: "g", [("in", 0, 5)]) == [0])
        h.broker.snapshotCoordinators()
        #expect(try await GroupRequestTests.commit(h, group: "later", [("in", 0, 9)]) == [0])
        let restarted = Self.harness(storage.afterPowerLoss())
        #expect(try await GroupRequestTests.fetchOffsets(restarted, group: "g", topic: "in", partitions: [0]) == [5])
        // Commits after the restart survive the next one: the snapshot was written again at the log's end.
        #expect(try await GroupRequestTests.commit(restarted, group: "next", [("in", 0, 3)]) == [0])
        let crashed = Self.harness(restarted.storage)
        #expect(try await GroupRequestTests.fetchOffsets(crashed, group: "next", topic: "in", partitions: [0]) == [3])
        #expect(try await GroupRequestTests.fetchOffsets(crashed, group: "g", topic: "in", partitions: [0]) == [5])
    }

    @Test("under flush always every acknowledged coordinator change survives a power cut")
    func coordinatorWritesAreDurableWhenAcknowledged() async throws {
        let storage = MemoryLogStorage(flushPolicy: .always)
        let h = Self.harness(storage)
        try storage.createTopic(name: "in", partitions: 1, configs: [:])
        try storage.createTopic(name: "out", partitions: 1, configs: [:])
        var first = Txn(h: h, id: "app")
        _ = try await first.initialize()
        var tx = Txn(h: h, id: "app")
        #expect(try await tx.initialize().producerEpoch == 1, "an epoch bump")
        #expect(try await tx.addPartitions("out", [0]) == [0])
        #expect(try await Self.addOffsets(h, tx, group: "g") == 0)
        #expect(try await Self.txnCommit(h, tx, group: "g", topic: "in", offset: 42) == 0)
        #expect(try await GroupRequestTests.commit(h, group: "plain", [("in", 0, 7)]) == [0])

        let restarted = Self.harness(storage.afterPowerLoss())
        let state = try #require(try await Self.describe(restarted, ["app"]).first)
        #expect(state.producerEpoch == 1, "the acknowledged bump survived: the old instance stays fenced")
        #expect(state.transactionState == "Ongoing")
        #expect(Set(state.topics.map(\.topic)) == ["out", InternalTopics.consumerOffsets])
        #expect(try await GroupRequestTests.fetchOffsets(restarted, group: "plain", topic: "in", partitions: [0]) == [7])
        tx = Txn(h: restarted, id: "app", producerId: tx.producerId, epoch: tx.epoch, sequence: [:])
        #expect(try await tx.end(commit: true) == 0)
        #expect(try await GroupRequestTests.fetchOffsets(restarted, group: "g", topic: "in", partitions: [0]) == [42],
                "the transactional offset was durable when acknowledged")
    }

    @Test("under flush always a consumer never reads what a power cut can still erase")
    func fetchStopsAtTheDurableEnd() async throws {
        let storage = MemoryLogStorage(flushPolicy: .always)
        let h = Self.harness(storage)
        try storage.createTopic(name: "t", partitions: 1, configs: [:])
        // Appended, its fsync not yet done: as a produce in its group-commit window.
        _ = try storage.partition(topic: "t", partition: 0)!.append(H.batch(["unsynced"]))
        let early = try await h.fetch(topic: "t", offset: 0)
        #expect(try H.values(early.records).isEmpty)
        #expect(early.highWatermark == 0)
        #expect(early.lastStableOffset == 0)
        #expect(try await h.produce(topic: "t", values: ["acked"], acks: 1).errorCode == 0)
        let later = try await h.fetch(topic: "t", offset: 0)
        #expect(try H.values(later.records).map(\.value) == ["unsynced", "acked"])
        #expect(later.highWatermark == 2)
    }

    @Test("a transaction's older offset loses to a newer plain commit, live and after a restart")
    func newestCommitRecordWins() async throws {
        let storage = MemoryLogStorage()
        let h = Self.harness(storage)
        try storage.createTopic(name: "in", partitions: 1, configs: [:])
        var tx = Txn(h: h, id: "app")
        _ = try await tx.initialize()
        #expect(try await Self.addOffsets(h, tx, group: "g") == 0)
        #expect(try await Self.txnCommit(h, tx, group: "g", topic: "in", offset: 10) == 0)
        #expect(try await GroupRequestTests.commit(h, group: "g", [("in", 0, 20)]) == [0])
        #expect(try await tx.end(commit: true) == 0)
        #expect(try await GroupRequestTests.fetchOffsets(h, group: "g", topic: "in", partitions: [0]) == [20])
        let restarted = Self.harness(storage)
        #expect(try await GroupRequestTests.fetchOffsets(restarted, group: "g", topic: "in", partitions: [0]) == [20])
    }
}
