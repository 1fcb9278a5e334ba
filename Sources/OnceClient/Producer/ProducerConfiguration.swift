import KafkaProtocol

/// How many replicas must have a record before the broker acknowledges it.
public enum ProducerAcks: Int16, Sendable, Hashable {
    /// The broker does not answer; records may be lost and offsets are unknown (-1).
    case none = 0
    /// The leader has written the record.
    case leader = 1
    /// Every in-sync replica has the record; required for idempotence and transactions.
    case all = -1
}

/// How a producer places records that name no partition.
public enum PartitionStrategy: Sendable, Hashable {
    /// Keyed records by the Java client's murmur2 hash (librdkafka's `murmur2_random`), so keys
    /// land where other clients put them; unkeyed records stick to one partition until its
    /// batch is sent, then move on (KIP-480), which keeps batches full.
    case murmur2Sticky
    /// Unkeyed records rotate across partitions one by one; keyed ones still use murmur2.
    case murmur2RoundRobin
}

/// Settings for `KafkaProducer`. Defaults follow Kafka 3+: idempotence on, acks=all.
public struct ProducerConfiguration: Sendable {
    public var bootstrapServers: [BootstrapServer]

    /// Connection settings shared with every client. Default: `KafkaClientConfiguration()`.
    public var client = KafkaClientConfiguration()

    /// Default: `.all` (idempotence and transactions require it).
    public var acks: ProducerAcks = .all

    /// Gives the producer an id and numbers its batches so the broker drops retried duplicates
    /// and keeps each partition in order with up to five requests in flight. Default: true.
    public var enableIdempotence = true

    /// Enables transactions (and implies idempotence). Producers sharing an id fence each other:
    /// the newest one wins. Default: nil.
    public var transactionalId: String?

    /// How long the coordinator lets a transaction stay open before aborting it. Default: 60 s.
    public var transactionTimeout: Duration = .seconds(60)

    /// How long a batch waits for more records before it is sent. Default: 5 ms.
    public var linger: Duration = .milliseconds(5)

    /// A batch is sent once it holds this many bytes. Default: 1 MiB (librdkafka's default).
    public var batchSize = 1024 * 1024

    /// Most unacknowledged batches per partition; Kafka's idempotence allows at most 5.
    /// Default: 5.
    public var maxInFlightPerPartition = 5

    /// How long a record may take, retries included, before `send` fails. Default: 120 s.
    public var deliveryTimeout: Duration = .seconds(120)

    /// How long `send` and `enqueue` wait for a topic's metadata while no broker can be
    /// reached (Kafka's `max.block.ms`). Default: 60 s.
    public var maxBlock: Duration = .seconds(60)

    /// Pause before a failed batch is sent again. Default: 100 ms.
    public var retryBackoff: Duration = .milliseconds(100)

    /// How long the broker may take to replicate before answering a produce. Default: 30 s.
    public var requestTimeout: Duration = .seconds(30)

    /// Record bytes the producer buffers before `send` waits for room (back-pressure).
    /// Default: 32 MiB.
    public var bufferMemory = 32 * 1024 * 1024

    /// The codec of every batch, written in the framing Kafka's Java producer uses (xerial for
    /// snappy, independent-block frames for lz4), so every Kafka consumer reads it. Default: `.none`.
    public var compression: CompressionCodec = .none

    /// Default: `.murmur2Sticky`.
    public var partitioner: PartitionStrategy = .murmur2Sticky

    public init(bootstrapServers: [BootstrapServer]) {
        self.bootstrapServers = bootstrapServers
    }

    /// Idempotence is on when asked for or implied by a transactional id.
    var isIdempotent: Bool { enableIdempotence || transactionalId != nil }
}

/// Where a produced record was stored.
public struct RecordMetadata: Hashable, Sendable {
    public var topicPartition: TopicPartition
    /// -1 with acks=none.
    public var offset: Int64
    public var timestamp: Int64

    public var topic: String { topicPartition.topic }
    public var partition: Int32 { topicPartition.partition }
}

/// A record to send: its topic, an optional fixed partition, key, value and headers.
public struct ProducerMessage: Sendable, Hashable {
    public var topic: String
    /// nil lets the partitioner choose.
    public var partition: Int32?
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [RecordHeader]
    /// Milliseconds since the epoch; nil means now.
    public var timestamp: Int64?

    public init(
        topic: String, partition: Int32? = nil, key: [UInt8]? = nil, value: [UInt8]?, headers: [RecordHeader] = [],
        timestamp: Int64? = nil
    ) {
        self.topic = topic
        self.partition = partition
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }

    public init(
        topic: String, partition: Int32? = nil, key: String? = nil, value: String, headers: [RecordHeader] = [],
        timestamp: Int64? = nil
    ) {
        self.init(
            topic: topic, partition: partition, key: key.map { Array($0.utf8) }, value: Array(value.utf8),
            headers: headers, timestamp: timestamp)
    }
}
