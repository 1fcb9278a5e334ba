import KafkaProtocol

/// A record as a consumer sees it: absolute offset and timestamp, key, value and headers.
public struct ConsumerRecord: Hashable, Sendable {
    public var topicPartition: TopicPartition
    public var offset: Int64
    public var timestamp: Int64
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [RecordHeader]
}

/// The records a fetch yielded for one partition, and where the next fetch should start.
public struct FetchedRecords: Hashable, Sendable {
    public var records: [ConsumerRecord]
    /// Past every whole batch read, including control batches and aborted ones, so a consumer
    /// never fetches them twice.
    public var nextOffset: Int64
}
