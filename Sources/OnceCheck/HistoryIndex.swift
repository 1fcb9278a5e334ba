/// A topic partition, as the checker keys it.
struct PartitionKey: Hashable, Comparable, CustomStringConvertible {
    var topic: String
    var partition: Int32

    static func < (a: PartitionKey, b: PartitionKey) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
    var description: String { "\(topic)-\(partition)" }
}

/// The history regrouped by what the checks ask about: records, transactions, readers.
/// `at` fields are positions in the history, the checker's notion of time.
struct HistoryIndex {
    struct Transaction {
        var id: String
        var transactionalId: String
        var instance: String
        var producerId: Int64
        var epoch: Int16
        var records: [String] = []
        var offsets: [(group: String, partition: PartitionKey, offset: Int64)] = []
        var outcome: TransactionOutcome?
    }

    struct Record {
        var id: String
        var transaction: String?
        var partition: PartitionKey
        var source: String?
        var offset: Int64?
        var ackedAt: Int?
    }

    struct Read {
        var reader: String
        var partition: PartitionKey
        var offset: Int64
        var record: String
        var at: Int
    }

    /// What one reader read of one partition: from `start` up to, not including, `end`.
    struct Coverage {
        var start: Int64?
        var reachedEnd: Int64?
        var firstRead: Int64?
        var lastRead: Int64?
        var offsetsRead: Set<Int64> = []
        var recordsRead: Set<String> = []

        var lowerBound: Int64? { start ?? firstRead }
        var upperBound: Int64? {
            switch (reachedEnd, lastRead) {
            case let (end?, last?): max(end, last + 1)
            case let (end?, nil): end
            case let (nil, last?): last + 1
            case (nil, nil): nil
            }
        }

        func covers(_ offset: Int64) -> Bool {
            guard let low = lowerBound, let high = upperBound else { return false }
            return low <= offset && offset < high
        }
    }

    struct Initialization {
        var transactionalId: String
        var instance: String
        var producerId: Int64
        var epoch: Int16
        var at: Int
    }

    var transactions: [String: Transaction] = [:]
    var transactionOrder: [String] = []
    var records: [String: Record] = [:]
    var recordOrder: [String] = []
    var reads: [Read] = []
    var readsByRecord: [String: [Int]] = [:]
    var coverage: [String: [PartitionKey: Coverage]] = [:]
    var initializations: [Initialization] = []
    var fences: [Initialization] = []
    /// The same, by transactional id, for the per-record fencing check.
    var initializationsById: [String: [Initialization]] = [:]
    var fencesById: [String: [Initialization]] = [:]
    /// Readers sorted by name, so reports come out in a stable order.
    var readerNames: [String] = []
    var committedOffsets: [String: [PartitionKey: Int64]] = [:]
    /// Where each transaction's offsets were sent, for "the last transaction that sent this offset".
    var offsetsSentAt: [String: Int] = [:]

    init(_ history: [HistoryEvent]) {
        for (at, event) in history.enumerated() {
            switch event {
            case let .producerInitialized(transactionalId, instance, producerId, epoch):
                initializations.append(Initialization(
                    transactionalId: transactionalId, instance: instance, producerId: producerId, epoch: epoch, at: at))
            case let .fenced(transactionalId, instance, producerId, epoch):
                fences.append(Initialization(
                    transactionalId: transactionalId, instance: instance, producerId: producerId, epoch: epoch, at: at))
            case let .transactionBegan(transaction, transactionalId, instance, producerId, epoch):
                if transactions[transaction] == nil { transactionOrder.append(transaction) }
                transactions[transaction] = Transaction(
                    id: transaction, transactionalId: transactionalId, instance: instance, producerId: producerId,
                    epoch: epoch)
            case let .recordSent(record, transaction, topic, partition, _, _, source):
                if records[record] == nil { recordOrder.append(record) }
                records[record] = Record(
                    id: record, transaction: transaction, partition: PartitionKey(topic: topic, partition: partition),
                    source: source)
                if let transaction { transactions[transaction]?.records.append(record) }
            case let .recordAcknowledged(record, offset):
                records[record]?.offset = offset
                records[record]?.ackedAt = at
            case let .offsetsSent(transaction, group, topic, partition, offset):
                transactions[transaction]?.offsets.append(
                    (group, PartitionKey(topic: topic, partition: partition), offset))
                offsetsSentAt[transaction] = at
            case let .transactionEnded(transaction, outcome):
                transactions[transaction]?.outcome = outcome
            case let .readerStarted(reader, topic, partition, position):
                coverage[reader, default: [:]][PartitionKey(topic: topic, partition: partition), default: Coverage()]
                    .start = position
            case let .recordRead(reader, topic, partition, offset, record):
                let key = PartitionKey(topic: topic, partition: partition)
                readsByRecord[record, default: []].append(reads.count)
                reads.append(Read(reader: reader, partition: key, offset: offset, record: record, at: at))
                var c = coverage[reader, default: [:]][key, default: Coverage()]
                c.firstRead = c.firstRead.map { min($0, offset) } ?? offset
                c.lastRead = c.lastRead.map { max($0, offset) } ?? offset
                c.offsetsRead.insert(offset)
                c.recordsRead.insert(record)
                coverage[reader]![key] = c
            case let .readerReachedEnd(reader, topic, partition, position):
                coverage[reader, default: [:]][PartitionKey(topic: topic, partition: partition), default: Coverage()]
                    .reachedEnd = position
            case let .committedOffsetObserved(group, topic, partition, offset):
                committedOffsets[group, default: [:]][PartitionKey(topic: topic, partition: partition)] = offset
            }
        }
        initializationsById = Dictionary(grouping: initializations, by: \.transactionalId)
        fencesById = Dictionary(grouping: fences, by: \.transactionalId)
        readerNames = coverage.keys.sorted()
    }

    func isVisible(_ record: String) -> Bool { readsByRecord[record] != nil }

    /// Committed, or of unknown outcome but seen by a reader (so the broker did commit it).
    func isEffectivelyCommitted(_ transaction: Transaction) -> Bool {
        switch transaction.outcome {
        case .committed: true
        case .unknown: transaction.records.contains(where: isVisible)
        case .aborted, nil: false
        }
    }

    /// Whether a reader must have seen the record: an acknowledged plain write, or an
    /// acknowledged record of an effectively committed transaction.
    func mustBeVisible(_ record: Record) -> Bool {
        guard record.offset != nil else { return false }
        guard let id = record.transaction else { return true }
        guard let transaction = transactions[id] else { return false }
        return isEffectivelyCommitted(transaction)
    }

}
