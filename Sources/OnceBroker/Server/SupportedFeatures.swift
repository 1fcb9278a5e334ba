import KafkaProtocol

/// The KIP-584 features this broker advertises in ApiVersions. A client turns a protocol
/// generation on only when the broker lists it as finalized: the Java client and OnceClient use
/// transactions V2 (KIP-890 part 2) once `transaction.version` is finalized at 2, and KIP-848's
/// consumer protocol once `group.version` is finalized at 1.
enum SupportedFeatures {
    /// Kafka's `transaction.version`: 0 and 1 are transactions V1 (1 adds nothing a client
    /// sees), 2 is V2, where every EndTxn bumps the epoch and partitions join implicitly.
    static let transactionVersion = "transaction.version"

    /// Kafka's `group.version`: 1 means the consumer group protocol (KIP-848) is served. Supported
    /// either way, finalized only while `--group-coordinator-rebalance-protocols` includes it.
    static let groupVersion = "group.version"

    static let supported: [(name: String, versions: ClosedRange<Int16>)] = [
        (transactionVersion, BrokerConfig.transactionVersions), (groupVersion, 0...1),
    ]

    /// The finalized levels. A feature at level 0 is left out, as Kafka's finalized features
    /// leave out a feature no level of which is enabled.
    static func finalized(transactionVersion level: Int16, consumerGroupProtocol: Bool) -> [(name: String, level: Int16)] {
        var features: [(name: String, level: Int16)] = []
        if level > 0 { features.append((transactionVersion, level)) }
        if consumerGroupProtocol { features.append((groupVersion, Int16(1))) }
        return features
    }

    /// The finalized features never change while a broker runs, so their epoch never moves; Kafka
    /// counts it from the metadata log, and any non-negative value tells a client they are known.
    static let finalizedEpoch: Int64 = 0

    /// Adds the features to an ApiVersions response (tagged fields, v3+). Below v4 a supported
    /// range that starts at 0 is left out, as Kafka does (KAFKA-17492): older Java clients reject it.
    static func describe(
        in response: inout ApiVersionsResponse, version: Int16, transactionVersion level: Int16, consumerGroupProtocol: Bool
    ) {
        guard version >= 3 else { return }
        response.supportedFeatures = supported.filter { version >= 4 || $0.versions.lowerBound > 0 }.map { feature in
            var key = ApiVersionsResponse.SupportedFeatureKey()
            key.name = feature.name
            key.minVersion = feature.versions.lowerBound
            key.maxVersion = feature.versions.upperBound
            return key
        }
        response.finalizedFeaturesEpoch = finalizedEpoch
        response.finalizedFeatures = finalized(transactionVersion: level, consumerGroupProtocol: consumerGroupProtocol).map { feature in
            var key = ApiVersionsResponse.FinalizedFeatureKey()
            key.name = feature.name
            key.minVersionLevel = feature.level
            key.maxVersionLevel = feature.level
            return key
        }
    }
}
