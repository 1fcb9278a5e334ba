import OnceClient

/// Where an event's identity comes from. Producers that retry at the application level resend
/// the same event under a new offset, so the offset cannot be the identity.
public enum EventIdSource: Hashable, Sendable {
    /// The UTF-8 value of this record header.
    case header(String)
    /// The record key, as UTF-8.
    case key

    /// nil when the record carries no id where configured.
    public func eventId(of record: ConsumerRecord) -> String? {
        switch self {
        case .header(let name):
            guard let value = record.headers.last(where: { $0.key == name })?.value else { return nil }
            return String(decoding: value, as: UTF8.self)
        case .key:
            return record.key.map { String(decoding: $0, as: UTF8.self) }
        }
    }
}

/// A record with its event id, as a dedup store and its handler see it.
public struct DedupEvent: Hashable, Sendable {
    public var id: String
    public var record: ConsumerRecord

    public init(id: String, record: ConsumerRecord) {
        self.id = id
        self.record = record
    }

    /// The next offset to read per partition once all of `events` are processed.
    public static func nextOffsets(_ events: some Sequence<DedupEvent>) -> [TopicPartition: Int64] {
        var result: [TopicPartition: Int64] = [:]
        for event in events {
            let next = event.record.offset + 1
            if next > result[event.record.topicPartition, default: -1] { result[event.record.topicPartition] = next }
        }
        return result
    }
}

/// A database that remembers which events were processed, and applies a handler's side effect
/// in the same atomic step as that memory. That atomicity is the whole guarantee: a crash
/// either keeps both the effect and the id, or neither, so a redelivered event is applied once.
///
/// A store instance serves one consumer at a time.
public protocol DedupStore: Sendable {
    /// What the handler writes its side effect through (a SQL connection inside the open
    /// transaction, a list of Redis commands run in the same script...).
    associatedtype Transaction

    /// For each event whose id this group has not processed: runs `effect` and records the id;
    /// also stores the next offsets of `events`. All of it commits together, or none of it.
    /// Returns the number of events applied (the rest were duplicates).
    func process(
        _ events: [DedupEvent], group: String,
        effect: (DedupEvent, Transaction) async throws -> Void
    ) async throws -> Int

    /// The next offsets stored with processed events, for audits and for resuming without Kafka.
    func storedOffsets(group: String) async throws -> [TopicPartition: Int64]
}
