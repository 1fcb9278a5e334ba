import KafkaProtocol

/// A record as a consumer sees it: absolute offset and timestamp, key, value and headers.
public struct ConsumerRecord: Hashable, Sendable {
    public var topicPartition: TopicPartition
    public var offset: Int64
    public var timestamp: Int64
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [RecordHeader]

    /// A record built by hand, for tests of code that handles records and for replaying records
    /// kept elsewhere; the consumer builds its own from fetch responses.
    ///
    /// - Parameters:
    ///   - timestamp: milliseconds since the epoch, as the record batch carries it.
    ///   - headers: in the order the producer wrote them.
    public init(
        topicPartition: TopicPartition, offset: Int64, timestamp: Int64 = 0, key: [UInt8]? = nil, value: [UInt8]?,
        headers: [RecordHeader] = []
    ) {
        self.topicPartition = topicPartition
        self.offset = offset
        self.timestamp = timestamp
        self.key = key
        self.value = value
        self.headers = headers
    }
}

/// The records a fetch yielded for one partition, and where the next fetch should start.
public struct FetchedRecords: Hashable, Sendable {
    public var records: [ConsumerRecord]
    /// Past every whole batch read, including control batches and aborted ones, so a consumer
    /// never fetches them twice.
    public var nextOffset: Int64
}
