import NIOCore

#if canImport(FoundationEssentials)
import struct FoundationEssentials.Data
#else
import struct Foundation.Data
#endif

/// Bytes a record key or value can be made from, so callers pass what they hold (`[UInt8]`,
/// `String`, `ByteBuffer`, `Data`) instead of converting first.
///
/// A record owns its bytes as `[UInt8]`: an array is taken as it is, sharing its storage (no
/// copy); the other types are copied once, straight into that array, which is the one copy a
/// record that outlives the caller's buffer needs.
public protocol KafkaPayload: Sendable {
    var kafkaBytes: [UInt8] { get }
}

extension Array: KafkaPayload where Element == UInt8 {
    public var kafkaBytes: [UInt8] { self }
}

extension ArraySlice: KafkaPayload where Element == UInt8 {
    public var kafkaBytes: [UInt8] { Array(self) }
}

extension String: KafkaPayload {
    public var kafkaBytes: [UInt8] { Array(utf8) }
}

extension Substring: KafkaPayload {
    public var kafkaBytes: [UInt8] { Array(utf8) }
}

/// The readable bytes, from the reader index on, as a channel handler would see them.
extension ByteBuffer: KafkaPayload {
    public var kafkaBytes: [UInt8] { Array(readableBytesView) }
}

extension Data: KafkaPayload {
    public var kafkaBytes: [UInt8] { Array(self) }
}

// The delegating calls below pass `Optional(...)` so they reach the `[UInt8]?` initialisers
// rather than these generic ones again.
extension ProducerMessage {
    /// A record of any payload types; a nil `key` leaves the record unkeyed.
    public init(
        topic: String, partition: Int32? = nil, key: (some KafkaPayload)?, value: some KafkaPayload,
        headers: [RecordHeader] = [], timestamp: Int64? = nil
    ) {
        self.init(
            topic: topic, partition: partition, key: key?.kafkaBytes, value: Optional(value.kafkaBytes), headers: headers,
            timestamp: timestamp)
    }

    /// An unkeyed record of any payload type.
    public init(
        topic: String, partition: Int32? = nil, value: some KafkaPayload, headers: [RecordHeader] = [],
        timestamp: Int64? = nil
    ) {
        self.init(
            topic: topic, partition: partition, key: nil as [UInt8]?, value: Optional(value.kafkaBytes), headers: headers,
            timestamp: timestamp)
    }
}

extension RecordHeader {
    /// A header of any payload type.
    public init(key: String, value: some KafkaPayload) {
        self.init(key: key, value: Optional(value.kafkaBytes))
    }
}
