import KafkaProtocol

/// The API versions a broker advertised, and the choice of version for each request.
///
/// The rule is the one every Kafka client uses: the highest version inside both the client's
/// range and the broker's. No overlap means the two cannot talk about that API at all.
public struct ApiVersionTable: Hashable, Sendable {
    public private(set) var brokerRanges: [Int16: ClosedRange<Int16>]

    public init(brokerRanges: [Int16: ClosedRange<Int16>]) {
        self.brokerRanges = brokerRanges
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
}
