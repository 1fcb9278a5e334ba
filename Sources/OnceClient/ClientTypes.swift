import NIOCore

/// Which records a fetch or ListOffsets may see.
public enum IsolationLevel: Int8, Sendable, Hashable, CaseIterable {
    /// Everything up to the high watermark, including records of open and aborted transactions.
    case readUncommitted = 0
    /// Only up to the last stable offset, with aborted transactions' records filtered out.
    case readCommitted = 1
}

/// Which offset ListOffsets should find.
public enum OffsetSpec: Hashable, Sendable {
    case earliest
    /// The end of the log: the high watermark, or the last stable offset under read_committed.
    case latest
    /// The first offset whose timestamp is at or after this many milliseconds since the epoch.
    case timestamp(Int64)

    var wireValue: Int64 {
        switch self {
        case .earliest: -2
        case .latest: -1
        case .timestamp(let ms): ms
        }
    }
}

/// The outcome of producing one batch to one partition.
public struct ProduceResult: Hashable, Sendable {
    public var topicPartition: TopicPartition
    /// The offset given to the batch's first record; -1 with acks=0 or on error.
    public var baseOffset: Int64
    /// Set when the topic uses LogAppendTime; -1 otherwise.
    public var logAppendTime: Int64
    public var logStartOffset: Int64
    public var error: KafkaError?
}

/// Where to fetch from in one partition.
public struct FetchPosition: Hashable, Sendable {
    public var topicPartition: TopicPartition
    public var offset: Int64
    /// Default: 1 MiB.
    public var maxBytes: Int32

    public init(_ topicPartition: TopicPartition, offset: Int64, maxBytes: Int32 = 1024 * 1024) {
        self.topicPartition = topicPartition
        self.offset = offset
        self.maxBytes = maxBytes
    }
}

/// A transaction whose records in a fetched range must be dropped under read_committed.
public struct AbortedTransaction: Hashable, Sendable {
    public var producerId: Int64
    public var firstOffset: Int64

    public init(producerId: Int64, firstOffset: Int64) {
        self.producerId = producerId
        self.firstOffset = firstOffset
    }
}

/// One partition's part of a Fetch response.
public struct FetchedPartition: Hashable, Sendable {
    public var topicPartition: TopicPartition
    public var error: KafkaError?
    public var highWatermark: Int64
    public var lastStableOffset: Int64
    public var logStartOffset: Int64
    public var abortedTransactions: [AbortedTransaction]
    /// Raw record batches; the last may be cut short by the size limits.
    public var records: ByteBuffer

    public init(
        topicPartition: TopicPartition, error: KafkaError? = nil, highWatermark: Int64, lastStableOffset: Int64,
        logStartOffset: Int64, abortedTransactions: [AbortedTransaction] = [], records: ByteBuffer
    ) {
        self.topicPartition = topicPartition
        self.error = error
        self.highWatermark = highWatermark
        self.lastStableOffset = lastStableOffset
        self.logStartOffset = logStartOffset
        self.abortedTransactions = abortedTransactions
        self.records = records
    }
}
