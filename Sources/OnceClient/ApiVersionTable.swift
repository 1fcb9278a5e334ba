import KafkaProtocol

/// The API versions a broker advertised, and the choice of version for each request.
///
/// The rule is the one every Kafka client uses: the highest version inside both the client's
/// range and the broker's. No overlap means the two cannot talk about that API at all.
public struct ApiVersionTable: Hashable, Sendable {
    public private(set) var brokerRanges: [Int16: ClosedRange<Int16>]
    /// The KIP-584 features the broker finalized, by name, at their level: a protocol generation
    /// (such as `transaction.version` 2) is used only once the cluster finalized it.
    public private(set) var finalizedFeatures: [String: Int16]

    public init(brokerRanges: [Int16: ClosedRange<Int16>], finalizedFeatures: [String: Int16] = [:]) {
        self.brokerRanges = brokerRanges
        self.finalizedFeatures = finalizedFeatures
    }

    /// The version to use for `apiKey`, or nil when the broker lacks the API or the ranges are
    /// disjoint.
    public func version(apiKey: Int16, client: ClosedRange<Int16>) -> Int16? {
        guard let broker = brokerRanges[apiKey] else { return nil }
        let low = max(broker.lowerBound, client.lowerBound)
        let high = min(broker.upperBound, client.upperBound)
        return low <= high ? high : nil
    }

    public func version<R: KafkaRequest>(for _: R.Type) -> Int16? {
        version(apiKey: R.apiKey, client: R.validVersions)
    }

    public func supports(apiKey: Int16) -> Bool { brokerRanges[apiKey] != nil }

    /// Whether the broker offers transactions V2 (KIP-890 part 2) as Kafka's clients decide it:
    /// `transaction.version` finalized at 2 or more, and the requests that carry it (Produce v12,
    /// EndTxn v5, TxnOffsetCommit v5) within both sides' ranges.
    public var offersTransactionsV2: Bool {
        (finalizedFeatures["transaction.version"] ?? 0) >= 2
            && (version(for: ProduceRequest.self) ?? 0) >= TransactionProtocol.v2.produce
            && (version(for: EndTxnRequest.self) ?? 0) >= TransactionProtocol.v2.endTxn
            && (version(for: TxnOffsetCommitRequest.self) ?? 0) >= TransactionProtocol.v2.txnOffsetCommit
    }
}

/// The request versions of each transaction protocol. V1 tops out below V2's first versions: a
/// broker takes Produce v12, EndTxn v5 and TxnOffsetCommit v5 to mean V2 (implicit adds, an
/// epoch bump per end), so a producer on V1 must not send them.
public enum TransactionProtocol: Sendable, Hashable {
    case v1
    case v2

    public var produce: Int16 { self == .v1 ? 11 : 12 }
    public var endTxn: Int16 { self == .v1 ? 4 : 5 }
    public var txnOffsetCommit: Int16 { self == .v1 ? 4 : 5 }

    /// The version to send: the negotiated one, capped at this protocol's (nil: no overlap).
    public func version<R: KafkaRequest>(for type: R.Type, in table: ApiVersionTable, cap: Int16) -> Int16? {
        guard let negotiated = table.version(for: type) else { return nil }
        let capped = min(negotiated, cap)
        return table.brokerRanges[R.apiKey].map { $0.contains(capped) } == true ? capped : nil
    }
}
