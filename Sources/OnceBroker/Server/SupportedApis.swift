import KafkaProtocol

/// The API versions this broker implements. ApiVersions advertises exactly these; a request outside
/// them is refused. A range grows only together with the handler code that gives its versions meaning.
enum SupportedApis {
    static let ranges: [ApiKey: ClosedRange<Int16>] = [
        .produce: 3...12,
        .fetch: 4...12,
        .listOffsets: 1...7,
        .offsetForLeaderEpoch: 2...4,
        .metadata: 0...12,
        .apiVersions: 0...4,
        .createTopics: 2...7,
        .deleteTopics: 1...6,
        .describeConfigs: 1...4,
        .alterConfigs: 0...2,
        .incrementalAlterConfigs: 0...1,
        .createPartitions: 0...3,
        .deleteRecords: 0...2,
        .describeLogDirs: 1...4,
        .describeCluster: 0...1,
        .findCoordinator: 0...4,
        .joinGroup: 0...9,
        .syncGroup: 0...5,
        .heartbeat: 0...4,
        .leaveGroup: 0...5,
        .offsetCommit: 2...9,
        .offsetFetch: 1...9,
        .offsetDelete: 0...0,
        .listGroups: 0...5,
        .describeGroups: 0...5,
        .deleteGroups: 0...2,
        .initProducerId: 0...4,
        .describeProducers: 0...0,
        .addPartitionsToTxn: 0...5,
        .addOffsetsToTxn: 0...4,
        .endTxn: 0...5,
        .txnOffsetCommit: 0...5,
        .describeTransactions: 0...0,
        .listTransactions: 0...1,
        .writeTxnMarkers: 1...2,
        .describeAcls: 1...3,
        .createAcls: 1...3,
        .deleteAcls: 1...3,
        .saslHandshake: 0...1,
        .saslAuthenticate: 0...2,
        .describeUserScramCredentials: 0...0,
        .alterUserScramCredentials: 0...0,
        .consumerGroupHeartbeat: 0...1,
        .consumerGroupDescribe: 0...0,
    ]

    /// The APIs of KIP-848's consumer group protocol, served only while it is enabled.
    static let consumerGroupProtocol: Set<ApiKey> = [.consumerGroupHeartbeat, .consumerGroupDescribe]

    static func range(of api: ApiKey) -> ClosedRange<Int16>? { ranges[api] }

    /// The advertised list, in api-key order.
    static var advertised: [(api: ApiKey, versions: ClosedRange<Int16>)] {
        ranges.map { ($0.key, $0.value) }.sorted { $0.api.rawValue < $1.api.rawValue }
    }
}
