import KafkaProtocol
import OnceClient
import Testing

/// Which transaction protocol a producer runs, and the request versions each allows: a broker
/// reads Produce v12, EndTxn v5 and TxnOffsetCommit v5 as transactions V2, so V1 must stay below.
@Suite struct TransactionProtocolTests {
    static let v2Ranges: [Int16: ClosedRange<Int16>] = [
        ProduceRequest.apiKey: 3...12, EndTxnRequest.apiKey: 0...5, TxnOffsetCommitRequest.apiKey: 0...5,
    ]

    @Test func v2IsOfferedOnlyWithTheFinalizedFeatureAndTheRequestVersions() {
        #expect(ApiVersionTable(brokerRanges: Self.v2Ranges, finalizedFeatures: ["transaction.version": 2]).offersTransactionsV2)
        #expect(!ApiVersionTable(brokerRanges: Self.v2Ranges).offersTransactionsV2, "supported but not finalized")
        #expect(!ApiVersionTable(brokerRanges: Self.v2Ranges, finalizedFeatures: ["transaction.version": 1]).offersTransactionsV2)
        var old = Self.v2Ranges
        old[EndTxnRequest.apiKey] = 0...4
        #expect(!ApiVersionTable(brokerRanges: old, finalizedFeatures: ["transaction.version": 2]).offersTransactionsV2)
    }

    @Test func v1CapsTheVersionsBelowV2() {
        let table = ApiVersionTable(brokerRanges: Self.v2Ranges, finalizedFeatures: ["transaction.version": 2])
        let v1 = TransactionProtocol.v1
        #expect(v1.version(for: ProduceRequest.self, in: table, cap: v1.produce) == 11)
        #expect(v1.version(for: EndTxnRequest.self, in: table, cap: v1.endTxn) == 4)
        #expect(v1.version(for: TxnOffsetCommitRequest.self, in: table, cap: v1.txnOffsetCommit) == 4)
        let v2 = TransactionProtocol.v2
        #expect(v2.version(for: EndTxnRequest.self, in: table, cap: v2.endTxn) == 5)
        // An older broker: the cap changes nothing below it.
        let older = ApiVersionTable(brokerRanges: [EndTxnRequest.apiKey: 0...3])
        #expect(v1.version(for: EndTxnRequest.self, in: older, cap: v1.endTxn) == 3)
    }

    @Test func underV2APartitionNeedsNoAddPartitionsToTxn() throws {
        var m = TransactionStateMachine()
        m.addsPartitionsImplicitly = true
        try m.initRequested()
        _ = m.initCompleted(nil)
        try m.beginRequested()
        let tp = TopicPartition("out", 0)
        #expect(try m.recordAppended(to: tp) == false)
        #expect(m.isAdded(tp) && m.pendingPartitions.isEmpty)
        #expect(try m.commitRequested() == .sendEndTxn(commit: true), "the coordinator knows the partition: EndTxn is sent")
    }
}
