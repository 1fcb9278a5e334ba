/// How a transaction ended, as its producer learned it.
public enum TransactionOutcome: String, Codable, Hashable, Sendable {
    case committed
    case aborted
    /// The commit call failed ambiguously (timeout, lost link, fenced while committing): the
    /// broker decides, so the checker accepts all of the transaction or none of it.
    case unknown
}

/// One thing a workload observed. A history is a list of these in the order they were
/// observed, which is the only clock the checker has: "after" always means "later in the list".
///
/// Recorders must log an event only once it happened from the client's point of view: an
/// acknowledgement when the ack arrived, an initialization when InitProducerId returned. The
/// JSON form (one event per line) is the synthesized `Codable` one, e.g.
/// `{"recordRead":{"reader":"r","topic":"t","partition":0,"offset":4,"record":"p1-7"}}`.
public enum HistoryEvent: Codable, Hashable, Sendable {
    /// InitProducerId returned this identity to a producer instance (a process-local name that
    /// tells two producers with the same transactional id apart).
    case producerInitialized(transactionalId: String, instance: String, producerId: Int64, epoch: Int16)
    /// The instance was told it is fenced; it had this identity.
    case fenced(transactionalId: String, instance: String, producerId: Int64, epoch: Int16)
    /// A transaction, named uniquely within the history, began under this identity.
    case transactionBegan(transaction: String, transactionalId: String, instance: String, producerId: Int64, epoch: Int16)
    /// A record with a history-unique id was handed to a producer. `transaction` is nil for
    /// idempotent or plain produce; `source` names the input record a processor derived it from.
    case recordSent(
        record: String, transaction: String?, topic: String, partition: Int32, key: String?, value: String?,
        source: String?)
    /// The broker acknowledged the record at this offset.
    case recordAcknowledged(record: String, offset: Int64)
    /// Consumer offsets added to a transaction (`offset` is the next offset to read).
    case offsetsSent(transaction: String, group: String, topic: String, partition: Int32, offset: Int64)
    case transactionEnded(transaction: String, outcome: TransactionOutcome)
    /// A read_committed reader (re)started reading the partition at `position`.
    case readerStarted(reader: String, topic: String, partition: Int32, position: Int64)
    /// A read_committed reader returned this record at this offset.
    case recordRead(reader: String, topic: String, partition: Int32, offset: Int64, record: String)
    /// The reader's position reached `position`, at or past the partition's last stable offset
    /// after all writers stopped: it has read the partition fully up to there.
    case readerReachedEnd(reader: String, topic: String, partition: Int32, position: Int64)
    /// The group's committed offset for the partition, read after the workload stopped.
    case committedOffsetObserved(group: String, topic: String, partition: Int32, offset: Int64)
}
