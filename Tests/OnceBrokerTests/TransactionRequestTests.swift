import KafkaProtocol
import NIOCore
@testable import OnceBroker
import OnceCore
import OnceStorage
import Testing

@Suite("Transactions through the broker")
struct TransactionRequestTests {
    typealias H = BrokerHarness

    /// A transactional producer driven by raw requests, as a client library would.
    struct Txn {
        let h: H
        let id: String
        var producerId: Int64 = -1
        var epoch: Int16 = -1
        var sequence: [Int32: Int32] = [:]

        mutating func initialize(timeoutMs: Int32 = 60_000) async throws -> InitProducerIdResponse {
            var req = InitProducerIdRequest()
            req.transactionalId = id
            req.transactionTimeoutMs = timeoutMs
            let r = try await h.send(req, version: 4)!
            if r.errorCode == 0 {
                producerId = r.producerId
                epoch = r.producerEpoch
                sequence = [:]
            }
            return r
        }

        func addPartitions(_ topic: String, _ partitions: [Int32]) async throws -> [Int16] {
            var t = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic()
            t.name = topic
            t.partitions = partitions
            var req = AddPartitionsToTxnRequest()
            req.v3AndBelowTransactionalId = id
            req.v3AndBelowProducerId = producerId
            req.v3AndBelowProducerEpoch = epoch
            req.v3AndBelowTopics = [t]
            let r = try await h.send(req, version: 3)!
            return r.resultsByTopicV3AndBelow.flatMap { $0.resultsByPartition.map(\.partitionErrorCode) }
        }

        mutating func produce(_ topic: String, _ values: [String], partition: Int32 = 0) async throws -> ProduceResponse.PartitionProduceResponse {
            let seq = sequence[partition, default: 0]
            let batch = H.idempotentBatch(values, producerId: producerId, epoch: epoch, sequence: seq, transactional: true)
            let r = try await h.produce(topic: topic, partition: partition, records: batch)!
            if r.errorCode == 0 { sequence[partition] = seq + Int32(values.count) }
            return r
        }

        func end(commit: Bool) async throws -> Int16 {
            var req = EndTxnRequest()
            req.transactionalId = id
            req.producerId = producerId
            req.producerEpoch = epoch
            req.committed = commit
            return try await h.send(req, version: 3)!.errorCode
        }
    }

    /// What a read_committed client keeps of a fetch: it drops a producer's batches from the first
    /// offset of an aborted transaction until that producer's ABORT marker.
    static func committedValues(_ h: H, _ topic: String, partition: Int32 = 0) async throws -> (values: [String], lso: Int64) {
        let fetched = try await h.fetch(topic: topic, partition: partition, offset: 0, isolation: 1)
        var pending = (fetched.abortedTransactions ?? []).sorted { $0.firstOffset < $1.firstOffset }
        var aborting = Set<Int64>()
        var values: [String] = []
        for batch in try RecordBatch.decodeAll(from: fetched.records ?? ByteBuffer()) {
            while let next = pending.first, next.firstOffset <= batch.header.baseOffset {
                aborting.insert(next.producerId)
                pending.removeFirst()
            }
            if batch.header.isControl {
                aborting.remove(batch.header.producerId)
                continue
            }
            if batch.header.isTransactional && aborting.contains(batch.header.producerId) { continue }
            values += batch.records.map { String(decoding: $0.value ?? [], as: UTF8.self) }
        }
        return (values, fetched.lastStableOffset)
    }

    @Test("committed records become visible to read_committed at the commit; aborted ones never do")
    func commitAndAbort() async throws {
        let h = H()
        try h.storage.createTopic(name: "out", partitions: 1, configs: [:])
        var tx = Txn(h: h, id: "app")
        #expect(try await tx.initialize().errorCode == 0)
        _ = try await h.produce(topic: "out", values: ["m1", "m2"])  // plain, before any transaction

        #expect(try await tx.addPartitions("out", [0]) == [0])
        #expect(try await tx.produce("out", ["m3", "m4", "m5"]).errorCode == 0)
        // Open transaction: the LSO holds read_committed readers at its first offset.
        var view = try await Self.committedValues(h, "out")
        #expect(view.values == ["m1", "m2"])
        #expect(view.lso == 2)
        #expect(try await tx.end(commit: false) == 0)

        #expect(try await tx.addPartitions("out", [0]) == [0])
        #expect(try await tx.produce("out", ["m6", "m7"]).errorCode == 0)
        #expect(try await tx.end(commit: true) == 0)
        // The seed's picture: m8 in a pending transaction.
        #expect(try await tx.addPartitions("out", [0]) == [0])
        #expect(try await tx.produce("out", ["m8"]).errorCode == 0)
        view = try await Self.committedValues(h, "out")
        #expect(view.values == ["m1", "m2", "m6", "m7"])
        // read_uncommitted sees everything.
        let all = try BrokerHarness.values(try await h.fetch(topic: "out", offset: 0, isolation: 0).records).map(\.value)
        #expect(all == ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"])
        #expect(try await tx.end(commit: true) == 0)
        view = try await Self.committedValues(h, "out")
        #expect(view.values == ["m1", "m2", "m6", "m7", "m8"])
        #expect(view.lso == h.storage.partition(topic: "out", partition: 0)?.logEndOffset)
    }

    @Test("a retried EndTxn gets the same answer; the opposite outcome is INVALID_TXN_STATE")
    func retriedEndTxn() async throws {
        let h = H()
        try h.storage.createTopic(name: "out", partitions: 1, configs: [:])
        var tx = Txn(h: h, id: "app")
        _ = try await tx.initialize()
        _ = try await tx.addPartitions("out", [0])
        _ = try await tx.produce("out", ["a"])
        #expect(try await tx.end(commit: true) == 0)
        #expect(try await tx.end(commit: true) == 0)
        #expect(try await tx.end(commit: false) == ErrorCode.invalidTxnState.rawValue)
    }

    @Test("a new producer with the same transactional id fences the old one and aborts its transaction")
    func zombieFencing() async throws {
        let h = H()
        try h.storage.createTopic(name: "out", partitions: 1, configs: [:])
        var zombie = Txn(h: h, id: "app")
        _ = try await zombie.initialize()
        _ = try await zombie.addPartitions("out", [0])
        #expect(try await zombie.produce("out", ["zombie-1"]).errorCode == 0)

        var fresh = Txn(h: h, id: "app")
        // The first answer aborts the open transaction; the retry gets the new epoch.
        #expect(try await fresh.initialize().errorCode == ErrorCode.concurrentTransactions.rawValue)
        #expect(try await fresh.initialize().errorCode == 0)
        #expect(fresh.epoch > zombie.epoch)

        // A partition write answers INVALID_PRODUCER_EPOCH (KIP-588); the coordinator, PRODUCER_FENCED.
        #expect(try await zombie.produce("out", ["zombie-2"]).errorCode == ErrorCode.invalidProducerEpoch.rawValue)
        #expect(try await zombie.addPartitions("out", [0]) == [ErrorCode.producerFenced.rawValue])
        #expect(try await zombie.end(commit: true) == ErrorCode.producerFenced.rawValue)
        #expect(try await Self.committedValues(h, "out").values.isEmpty)
    }

    @Test("a transactional write to a partition not in the transaction is refused (KIP-890)")
    func unregisteredPartition() async throws {
        let h = H()
        try h.storage.createTopic(name: "out", partitions: 2, configs: [:])
        var tx = Txn(h: h, id: "app")
        _ = try await tx.initialize()
        _ = try await tx.addPartitions("out", [0])
        #expect(try await tx.produce("out", ["stray"], partition: 1).errorCode == ErrorCode.invalidTxnState.rawValue)
        #expect(h.storage.partition(topic: "out", partition: 1)?.logEndOffset == 0)
        #expect(try await tx.addPartitions("missing-topic-\(UInt32.random(in: 0...UInt32.max))", [0])
            == [ErrorCode.unknownTopicOrPartition.rawValue])
    }

    @Test("an abandoned transaction is aborted once its timeout passes, fencing its producer")
    func timeout() async throws {
        let h = H()
        try h.storage.createTopic(name: "out", partitions: 1, configs: [:])
        var tx = Txn(h: h, id: "app")
        _ = try await tx.initialize(timeoutMs: 10_000)
        _ = try await tx.addPartitions("out", [0])
        _ = try await tx.produce("out", ["abandoned"])
        try await h.broker.transactions.checkTimeouts(now: Clock.nowMilliseconds() + 5_000)
        #expect(try await Self.committedValues(h, "out").lso == 0)
        try await h.broker.transactions.checkTimeouts(now: Clock.nowMilliseconds() + 10_001)
        let view = try await Self.committedValues(h, "out")
        #expect(view.values.isEmpty)
        #expect(view.lso == 2, "data and its abort marker are decided")
        #expect(try await tx.end(commit: true) == ErrorCode.producerFenced.rawValue)
    }

    @Test("InitProducerId refuses a timeout above transaction.max.timeout.ms")
    func invalidTimeout() async throws {
        let h = H()
        try h.storage.createTopic(name: "out", partitions: 1, configs: [:])
        var tx = Txn(h: h, id: "app")
        #expect(try await tx.initialize(timeoutMs: 900_001).errorCode == ErrorCode.invalidTransactionTimeout.rawValue)
    }

    @Test("a restarted broker finishes the markers of a transaction a crash left prepared")
    func recoveryFromPrepare() async throws {
        let storage = MemoryLogStorage()
        let h = H(storage: storage)
        try storage.createTopic(name: "out", partitions: 1, configs: [:])
        var tx = Txn(h: h, id: "app")
        _ = try await tx.initialize()
        _ = try await tx.addPartitions("out", [0])
        _ = try await tx.produce("out", ["a", "b"])
        // Simulate a crash right after PrepareCommit became durable: append that record ourselves.
        var prepared = try #require(h.broker.transactions.transactions.first)
        prepared.state = .prepareCommit
        let log = try #require(storage.partition(topic: TransactionService.topicName, partition: 0))
        _ = try log.append(RecordBatch.encode(
            records: [Record(offsetDelta: 0, key: Array("app".utf8), value: prepared.encoded())], baseTimestamp: 0))
        #expect(try await Self.committedValues(h, "out").values.isEmpty)

        let restarted = H(storage: storage)
        #expect(restarted.broker.transactions.transactions.first?.state == .completeCommit)
        #expect(try await Self.committedValues(restarted, "out").values == ["a", "b"])
    }

    @Test("after a restart the LSO, aborted index and fencing are rebuilt from the log")
    func recoveryOfPartitionState() async throws {
        let storage = MemoryLogStorage()
        let h = H(storage: storage)
        try storage.createTopic(name: "out", partitions: 1, configs: [:])
        var tx = Txn(h: h, id: "app")
        _ = try await tx.initialize()
        _ = try await tx.addPartitions("out", [0])
        _ = try await tx.produce("out", ["aborted"])
        _ = try await tx.end(commit: false)
        _ = try await tx.addPartitions("out", [0])
        _ = try await tx.produce("out", ["open"])
        let restarted = H(storage: storage)
        let view = try await Self.committedValues(restarted, "out")
        #expect(view.values.isEmpty)
        #expect(view.lso == 2)
        let again = Txn(h: restarted, id: "app", producerId: tx.producerId, epoch: tx.epoch, sequence: tx.sequence)
        #expect(try await again.end(commit: true) == 0)
        #expect(try await Self.committedValues(restarted, "out").values == ["open"])
    }

    @Test("a snapshot plus the log after it restores the coordinator; the snapshot replaces old segments")
    func coordinatorSnapshot() async throws {
        let storage = MemoryLogStorage()
        let h = H(storage: storage)
        try storage.createTopic(name: "out", partitions: 1, configs: [:])
        var a = Txn(h: h, id: "a")
        _ = try await a.initialize()
        _ = try await a.addPartitions("out", [0])
        _ = try await a.produce("out", ["a1"])
        _ = try await a.end(commit: true)
        h.broker.snapshotCoordinators()
        let snapshot = try TransactionLogSnapshot(
            decoding: try #require(try storage.readState(named: TransactionService.snapshotName)))
        #expect(snapshot.transactions.map(\.transactionalId) == ["a"])
        // After the snapshot: a second id, and an open transaction.
        var b = Txn(h: h, id: "b")
        _ = try await b.initialize()
        _ = try await b.addPartitions("out", [0])
        _ = try await b.produce("out", ["b1"])

        let restarted = H(storage: storage)
        let states = Dictionary(uniqueKeysWithValues: restarted.broker.transactions.transactions.map { ($0.transactionalId, $0.state) })
        #expect(states == ["a": .completeCommit, "b": .ongoing])
        b = Txn(h: restarted, id: "b", producerId: b.producerId, epoch: b.epoch, sequence: b.sequence)
        #expect(try await b.end(commit: true) == 0)
        #expect(try await Self.committedValues(restarted, "out").values == ["a1", "b1"])
    }

    @Test("consumer offsets, plain and transactional, survive a restart from the groups' snapshot")
    func offsetsSnapshot() async throws {
        let storage = MemoryLogStorage()
        let h = H(storage: storage)
        try storage.createTopic(name: "out", partitions: 1, configs: [:])
        func fetchOffset(_ h: H) async throws -> Int64 {
            var topic = OffsetFetchRequest.OffsetFetchRequestTopic()
            topic.name = "out"
            topic.partitionIndexes = [0]
            var req = OffsetFetchRequest()
            req.groupId = "g"
            req.topics = [topic]
            return try #require(try await h.send(req, version: 7)).topics[0].partitions[0].committedOffset
        }
        var partition = OffsetCommitRequest.OffsetCommitRequestPartition()
        partition.partitionIndex = 0
        partition.committedOffset = 3
        var topic = OffsetCommitRequest.OffsetCommitRequestTopic()
        topic.name = "out"
        topic.partitions = [partition]
        var commit = OffsetCommitRequest()
        commit.groupId = "g"
        commit.generationIdOrMemberEpoch = -1
        commit.topics = [topic]
        #expect(try await h.send(commit, version: 8)?.topics[0].partitions[0].errorCode == 0)

        var tx = Txn(h: h, id: "app")
        _ = try await tx.initialize()
        var addOffsets = AddOffsetsToTxnRequest()
        addOffsets.transactionalId = "app"
        addOffsets.producerId = tx.producerId
        addOffsets.producerEpoch = tx.epoch
        addOffsets.groupId = "g"
        #expect(try await h.send(addOffsets, version: 3)?.errorCode == 0)
        var txnPartition = TxnOffsetCommitRequest.TxnOffsetCommitRequestPartition()
        txnPartition.partitionIndex = 0
        txnPartition.committedOffset = 7
        var txnTopic = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic()
        txnTopic.name = "out"
        txnTopic.partitions = [txnPartition]
        var txnCommit = TxnOffsetCommitRequest()
        txnCommit.transactionalId = "app"
        txnCommit.groupId = "g"
        txnCommit.producerId = tx.producerId
        txnCommit.producerEpoch = tx.epoch
        txnCommit.topics = [txnTopic]
        #expect(try await h.send(txnCommit, version: 3)?.topics[0].partitions[0].errorCode == 0)
        #expect(try await fetchOffset(h) == 3, "the transactional offset waits for its commit")

        h.broker.snapshotCoordinators()
        #expect(try storage.readState(named: GroupCoordinator.snapshotName) != nil)
        let restarted = H(storage: storage)
        #expect(try await fetchOffset(restarted) == 3)
        tx = Txn(h: restarted, id: "app", producerId: tx.producerId, epoch: tx.epoch, sequence: tx.sequence)
        #expect(try await tx.end(commit: true) == 0)
        #expect(try await fetchOffset(restarted) == 7, "the marker after the snapshot applies the pending offset")
        let again = H(storage: storage)
        #expect(try await fetchOffset(again) == 7)
    }

    @Test("clients cannot produce to internal topics")
    func internalTopicsAreClosed() async throws {
        let h = H()
        let response = try await h.produce(topic: TransactionService.topicName, records: BrokerHarness.batch(["x"]))
        #expect(response?.errorCode == ErrorCode.invalidTopicException.rawValue)
    }

    @Test("DescribeTransactions and ListTransactions show the coordinator's state")
    func describeAndList() async throws {
        let h = H()
        try h.storage.createTopic(name: "out", partitions: 1, configs: [:])
        var tx = Txn(h: h, id: "app")
        _ = try await tx.initialize()
        _ = try await tx.addPartitions("out", [0])
        var describe = DescribeTransactionsRequest()
        describe.transactionalIds = ["app", "nope"]
        let d = try #require(try await h.send(describe, version: 0))
        #expect(d.transactionStates[0].transactionState == "Ongoing")
        #expect(d.transactionStates[0].producerId == tx.producerId)
        #expect(d.transactionStates[0].topics.map(\.topic) == ["out"])
        #expect(d.transactionStates[1].errorCode == ErrorCode.transactionalIdNotFound.rawValue)
        var list = ListTransactionsRequest()
        list.stateFilters = ["Ongoing", "Bogus"]
        let l = try #require(try await h.send(list, version: 1))
        #expect(l.transactionStates.map(\.transactionalId) == ["app"])
        #expect(l.unknownStateFilters == ["Bogus"])
    }
}
