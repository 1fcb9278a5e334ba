import KafkaProtocol
import NIOCore
import OnceCore

/// The broker's log behind one protocol. Engines (file, memory) hold the same semantics; anything
/// exactly-once lives above this layer, in OnceCore.
public protocol LogStorage: AnyObject, Sendable {
    /// Topics in name order.
    func topics() -> [TopicMetadata]
    func topic(named name: String) -> TopicMetadata?

    /// Creates a topic and its partitions durably. Throws `StorageError.topicExists` or
    /// `StorageError.invalidConfig`.
    @discardableResult
    func createTopic(name: String, partitions: Int32, configs: [String: String]) throws -> TopicMetadata

    /// Removes a topic and its data. Throws `StorageError.unknownTopic`.
    func deleteTopic(name: String) throws

    /// Grows a topic to `count` partitions durably. Partitions are never taken away, because
    /// records keyed to one would move, so a count that is not larger throws
    /// `StorageError.invalidPartitions`; an unknown topic throws `StorageError.unknownTopic`.
    @discardableResult
    func addPartitions(topic: String, count: Int32) throws -> TopicMetadata

    /// Replaces a topic's config overrides durably; its partitions apply them from then on (a
    /// smaller segment size rolls at the next append, a shorter retention deletes at the next
    /// retention pass). Throws `StorageError.unknownTopic` or `StorageError.invalidConfig`.
    @discardableResult
    func setTopicConfigs(topic: String, configs: [String: String]) throws -> TopicMetadata

    /// The log of one partition, or nil if the topic or partition does not exist.
    func partition(topic: String, partition: Int32) -> PartitionLog?

    /// The partitions already open, never opening one: what a metrics scrape may look at without
    /// loading thousands of idle logs.
    func loadedPartitions() -> [any PartitionLog]

    /// Deletes segments beyond retention and rolls segments by age. The broker calls it periodically.
    func enforceRetention(nowMs: Int64)

    /// Flushes everything and closes files. Appends after close are a programming error.
    func close() throws

    /// Small durable documents kept beside the log by the layers above (producer-id reservations,
    /// producer-state snapshots). Each write replaces the document atomically and durably and is
    /// checksummed, so after a crash a read returns the old or the new bytes, never a mix.
    /// Names are made of [A-Za-z0-9._-]. Nil if never written.
    func readState(named name: String) throws -> [UInt8]?
    func writeState(named name: String, _ bytes: [UInt8]) throws
    func removeState(named name: String) throws
    /// Writes a document that describes one partition's log (its producer-state snapshot, a
    /// coordinator's snapshot of its internal partition) only while this broker still leads that
    /// log: over shared storage a paused ex-leader waking after its lease moved would otherwise
    /// replace the new leader's snapshot with one whose segments the new leader already deleted,
    /// or one that claims batches that never committed. Throws `StorageError.notLeader` then.
    func writeState(named name: String, _ bytes: [UInt8], describing log: any PartitionLog) throws
}

extension LogStorage {
    /// A broker over its own storage always leads its logs.
    public func writeState(named name: String, _ bytes: [UInt8], describing log: any PartitionLog) throws {
        try writeState(named: name, bytes)
    }
}

/// One partition's append-only log of record batches.
public protocol PartitionLog: AnyObject, Sendable {
    var topic: String { get }
    var partition: Int32 { get }
    /// First offset still stored.
    var logStartOffset: Int64 { get }
    /// Offset the next appended record will get.
    var logEndOffset: Int64 { get }
    /// The end consumers may read to (Kafka's high watermark): under the `always` flush policy the
    /// durable end, so nothing a power loss can still erase is ever served; otherwise the log end.
    var highWatermark: Int64 { get }

    /// Appends record batches (v2) exactly as sent, assigning offsets from `logEndOffset` by rewriting
    /// each batch's base offset (the CRC does not cover it). The caller has validated the batches.
    /// With `LogAppendTime` topics the caller sets the timestamps before appending.
    /// Returns once the data is in the page cache; see `waitDurable` for the disk.
    func append(_ batches: ByteBuffer) throws -> AppendResult

    /// Completes when everything up to `offset` (exclusive) is on disk under the engine's flush
    /// policy: immediately for `none` and `interval`, after a shared fsync (group commit) for `always`.
    func waitDurable(upTo offset: Int64) async throws

    /// fsyncs everything appended so far, whatever the flush policy. Internal logs call it before a
    /// snapshot replaces their older segments, so a power loss never leaves the log shorter than a
    /// snapshot that claims to cover it.
    func sync() throws

    /// Whole batches starting with the one that contains `offset`, up to about `maxBytes` (at least
    /// one batch is returned even if it is larger, as Kafka does, so a consumer can always progress),
    /// and never at or beyond `limitOffset` (a batch whose last offset is >= limit is excluded).
    /// Throws `StorageError.offsetOutOfRange` if `offset` is below `logStartOffset` or above
    /// `logEndOffset`.
    func read(from offset: Int64, maxBytes: Int, limitOffset: Int64) throws -> ByteBuffer

    /// Where the batches `read` would return lie in one file, without reading them (length 0 when
    /// it would return none). Nil when the engine has no files or the batches are not in one
    /// place (an offset in a gap between segments); the caller then uses `read`.
    func locate(from offset: Int64, maxBytes: Int, limitOffset: Int64) throws -> StoredRecords?

    /// The earliest offset whose batch max timestamp is >= `timestamp`, with that batch's
    /// max timestamp; nil if no such batch (Kafka answers -1).
    func offset(forTimestamp timestamp: Int64) throws -> (offset: Int64, timestamp: Int64)?

    /// The largest timestamp stored and the offset of its batch (ListOffsets -3, max timestamp).
    func maxTimestamp() -> (offset: Int64, timestamp: Int64)?

    /// Deletes the segments that lie entirely below `offset` (never the active one), advancing
    /// `logStartOffset`. For internal logs whose older records a durable snapshot has replaced.
    /// Returns the number of segments deleted.
    @discardableResult
    func deleteSegments(below offset: Int64) throws -> Int

    /// DeleteRecords: makes `offset` the first offset a reader can ask for, durably, and deletes
    /// the segments that lie entirely below it. An offset at or below the current log start
    /// changes nothing. Throws `StorageError.offsetOutOfRange` above the log end. Returns the log
    /// start offset afterwards.
    @discardableResult
    func advanceLogStart(to offset: Int64) throws -> Int64

    /// Bytes the partition's batches take in storage.
    var sizeInBytes: Int64 { get }

    /// Whom the cleaner tells of the abort markers it is about to remove, before the pass's
    /// cleaned segments replace the old ones (and outside the partition's lock, which the
    /// handler's owner may hold while appending): the broker's aborted-transaction index must have
    /// forgotten those transactions before any reader can see the log without their markers.
    func setAbortMarkerRemovalHandler(_ handler: @escaping @Sendable ([CleaningPlan.AbortMarker]) -> Void)
}

extension PartitionLog {
    /// An engine without a cleaner removes no marker, so it has no one to tell.
    public func setAbortMarkerRemovalHandler(_ handler: @escaping @Sendable ([CleaningPlan.AbortMarker]) -> Void) {}
}

public struct AppendResult: Sendable, Equatable {
    public var baseOffset: Int64
    public var lastOffset: Int64
    /// Offset the next append will get.
    public var logEndOffset: Int64
    public init(baseOffset: Int64, lastOffset: Int64, logEndOffset: Int64) {
        self.baseOffset = baseOffset
        self.lastOffset = lastOffset
        self.logEndOffset = logEndOffset
    }
}

public struct TopicMetadata: Sendable, Equatable {
    public var name: String
    public var id: KafkaUUID
    public var partitionCount: Int32
    /// Topic-level overrides only; `TopicConfig` holds the defaults.
    public var configs: [String: String]
    public init(name: String, id: KafkaUUID, partitionCount: Int32, configs: [String: String]) {
        self.name = name
        self.id = id
        self.partitionCount = partitionCount
        self.configs = configs
    }
}

public enum StorageError: Error, Equatable, Sendable {
    case topicExists(String)
    case unknownTopic(String)
    case invalidConfig(String)
    case invalidPartitions(String)
    case offsetOutOfRange(requested: Int64, logStart: Int64, logEnd: Int64)
    case corrupt(String)
    case io(String)
    /// This broker no longer leads the partition (another took its lease): the client must look
    /// the leader up again, as Kafka's NOT_LEADER_OR_FOLLOWER tells it to.
    case notLeader(String)
    /// The data was appended but its durability could not be confirmed (the database went away
    /// mid-commit); it may still become durable, so the writer must be told "unknown", not "failed".
    case outcomeUnknown(String)
}

/// When appended data reaches the disk.
public enum FlushPolicy: Sendable, Equatable {
    /// Leave it to the page cache (Kafka's default).
    case none
    /// fsync every partition with new data every `milliseconds`.
    case interval(milliseconds: Int64)
    /// fsync before acknowledging; concurrent appenders share one fsync.
    case always
}
