import KafkaProtocol
@testable import OnceBroker
import OnceCore
import Testing

/// The finalized `transaction.version` (`--transaction-version`) and the codes a transactional
/// write gets by request version, where Kafka answers them from different places.
@Suite("transaction.version and the codes of transactional writes")
struct TransactionVersionTests {
    typealias H = BrokerHarness
    typealias Txn = TransactionRequestTests.Txn

    @Test("ApiVersions finalizes the configured transaction.version; level 0 is not listed", arguments: [Int16(0), 1, 2])
    func finalizesTheConfiguredLevel(level: Int16) async throws {
        let h = H { $0.transactionVersion = level }
        let response = try #require(try await h.send(ApiVersionsRequest(), version: 4))
        let finalized = response.finalizedFeatures.filter { $0.name == "transaction.version" }
        #expect(finalized.map(\.maxVersionLevel) == (level == 0 ? [] : [level]))
        #expect(finalized.allSatisfy { $0.minVersionLevel == $0.maxVersionLevel })
        let supported = response.supportedFeatures.first { $0.name == "transaction.version" }
        #expect(supported?.minVersion == 0 && supported?.maxVersion == 2, "what the broker can do does not change")
    }

    @Test("a partition outside the transaction: TRANSACTION_ABORTABLE only from a verify-only check a client knows it for")
    func notInTheTransaction() {
        let missing = TransactionCoordinator.Failure.invalidTxnState
        // Produce v11 / TxnOffsetCommit v4: the coordinator verified, the client knows the code.
        #expect(missing.transactionalWriteErrorCode(coordinatorVerifiedOnly: true, clientKnowsAbortable: true) == .transactionAbortable)
        // Older clients get INVALID_TXN_STATE.
        #expect(missing.transactionalWriteErrorCode(coordinatorVerifiedOnly: true, clientKnowsAbortable: false) == .invalidTxnState)
        // Produce v12 / TxnOffsetCommit v5: the partition was added, so only the log's guard can refuse.
        #expect(missing.transactionalWriteErrorCode(coordinatorVerifiedOnly: false, clientKnowsAbortable: true) == .invalidTxnState)
        // The other refusals are the partition's, whatever the version.
        #expect(TransactionCoordinator.Failure.producerFenced.transactionalWriteErrorCode(
            coordinatorVerifiedOnly: true, clientKnowsAbortable: true) == .invalidProducerEpoch)
        #expect(TransactionCoordinator.Failure.concurrentTransactions.transactionalWriteErrorCode(
            coordinatorVerifiedOnly: false, clientKnowsAbortable: true) == .concurrentTransactions)
    }

    @Test("AddPartitionsToTxn verify-only: v5 answers TRANSACTION_ABORTABLE for a partition outside the transaction, v4 INVALID_TXN_STATE")
    func verifyOnlyByVersion() async throws {
        let h = H()
        try h.storage.createTopic(name: "t", partitions: 2, configs: [:])
        var tx = Txn(h: h, id: "app")
        _ = try await tx.initialize()
        #expect(try await tx.addPartitions("t", [0]) == [0])
        func verify(partition: Int32, version: Int16) async throws -> Int16 {
            var topic = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic()
            topic.name = "t"
            topic.partitions = [partition]
            var txn = AddPartitionsToTxnRequest.AddPartitionsToTxnTransaction()
            txn.transactionalId = "app"
            txn.producerId = tx.producerId
            txn.producerEpoch = tx.epoch
            txn.verifyOnly = true
            txn.topics = [topic]
            var req = AddPartitionsToTxnRequest()
            req.transactions = [txn]
            let response = try #require(try await h.send(req, version: version))
            return response.resultsByTransaction[0].topicResults[0].resultsByPartition[0].partitionErrorCode
        }
        #expect(try await verify(partition: 0, version: 5) == 0)
        #expect(try await verify(partition: 1, version: 5) == ErrorCode.transactionAbortable.rawValue)
        #expect(try await verify(partition: 1, version: 4) == ErrorCode.invalidTxnState.rawValue)
    }
}
