import KafkaProtocol

/// A topic and partition, the unit Kafka orders and stores records in.
public struct TopicPartition: Hashable, Sendable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32

    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }

    public var description: String { "\(topic)-\(partition)" }
}

/// A broker as the cluster advertises it.
public struct BrokerInfo: Hashable, Sendable {
    public var nodeId: Int32
    public var host: String
    public var port: Int
    public var rack: String?
}

/// One partition from a Metadata response.
public struct PartitionMetadata: Hashable, Sendable {
    public var partition: Int32
    /// -1 while no leader is elected.
    public var leader: Int32
    public var leaderEpoch: Int32
    public var replicas: [Int32]
    public var isr: [Int32]
    public var error: KafkaError?
}

/// One topic from a Metadata response. `error` is set, and `partitions` empty, for a topic the
/// cluster does not have.
public struct TopicMetadata: Hashable, Sendable {
    public var name: String
    public var topicId: KafkaUUID
    public var isInternal: Bool
    public var partitions: [PartitionMetadata]
    public var error: KafkaError?
}

/// What a Metadata request says about the cluster.
public struct ClusterMetadata: Hashable, Sendable {
    public var clusterId: String?
    public var controllerId: Int32
    public var brokers: [BrokerInfo]
    public var topics: [TopicMetadata]

    public func topic(_ name: String) -> TopicMetadata? {
        topics.first { $0.name == name }
    }
}

extension ClusterMetadata {
    init(_ response: MetadataResponse) {
        self.init(
            clusterId: response.clusterId,
            controllerId: response.controllerId,
            brokers: response.brokers.map {
                BrokerInfo(nodeId: $0.nodeId, host: $0.host, port: Int($0.port), rack: $0.rack)
            },
            topics: response.topics.map { topic in
                TopicMetadata(
                    name: topic.name ?? "",
                    topicId: topic.topicId,
                    isInternal: topic.isInternal,
                    partitions: topic.partitions.map {
                        PartitionMetadata(
                            partition: $0.partitionIndex, leader: $0.leaderId, leaderEpoch: $0.leaderEpoch,
                            replicas: $0.replicaNodes, isr: $0.isrNodes, error: KafkaError(errorCode: $0.errorCode))
                    }.sorted { $0.partition < $1.partition },
                    error: KafkaError(errorCode: topic.errorCode))
            })
    }
}

/// A topic configuration entry as DescribeConfigs reports it.
public struct ConfigEntry: Hashable, Sendable {
    public var name: String
    public var value: String?
    public var isReadOnly: Bool
    public var isSensitive: Bool
    /// Kafka's ConfigSource: 1 topic, 4 static broker, 5 default, among others.
    public var source: Int8

    /// Whether the value was set on the topic itself rather than inherited.
    public var isTopicOverride: Bool { source == 1 }
}
