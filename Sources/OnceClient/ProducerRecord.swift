import KafkaProtocol
import NIOCore

/// A record to produce: key, value, headers and its creation time in milliseconds since the epoch.
public struct ProducerRecord: Hashable, Sendable {
    public var key: [UInt8]?
    public var value: [UInt8]?
    public var headers: [RecordHeader]
    public var timestamp: Int64

    public init(key: [UInt8]? = nil, value: [UInt8]?, headers: [RecordHeader] = [], timestamp: Int64) {
        self.key = key
        self.value = value
        self.headers = headers
        self.timestamp = timestamp
    }
}

extension ProducerRecord {
    /// Encodes records as one uncompressed, non-idempotent batch (no producer id), the form a
    /// plain producer sends. Timestamps become deltas from the earliest one.
    public static func encodeBatch(_ records: [ProducerRecord]) -> ByteBuffer {
        let base = records.map(\.timestamp).min() ?? 0
        return RecordBatch.encode(
            records: records.map {
                Record(timestampDelta: $0.timestamp - base, offsetDelta: 0, key: $0.key, value: $0.value, headers: $0.headers)
            },
            baseTimestamp: base)
    }
}

extension KafkaClient {
    /// Produces records, one batch per partition; see `produce(_:acks:timeout:transactionalId:)`.
    public func produce(
        records: [TopicPartition: [ProducerRecord]], acks: Int16 = -1, timeout: Duration = .seconds(30)
    ) async throws -> [TopicPartition: ProduceResult] {
        try await produce(records.mapValues { ProducerRecord.encodeBatch($0) }, acks: acks, timeout: timeout)
    }
}
