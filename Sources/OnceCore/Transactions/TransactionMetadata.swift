/// A topic partition, as the transaction coordinator tracks the partitions a transaction wrote.
public struct TopicPartitionKey: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var topic: String
    public var partition: Int32
    public init(_ topic: String, _ partition: Int32) {
        self.topic = topic
        self.partition = partition
    }
    public static func < (a: Self, b: Self) -> Bool { (a.topic, a.partition) < (b.topic, b.partition) }
    public var description: String { "\(topic)-\(partition)" }
}

/// The states of a transactional id, as Kafka names them.
public enum TransactionState: Int8, Sendable, Equatable, CaseIterable {
    /// Initialised, no transaction open.
    case empty = 0
    /// Partitions have been added; records may be in the log.
    case ongoing = 1
    /// Commit decided and durable; markers are being written.
    case prepareCommit = 2
    /// Abort decided and durable; markers are being written.
    case prepareAbort = 3
    case completeCommit = 4
    case completeAbort = 5
    /// Expired; the id is forgotten once this is durable.
    case dead = 6

    public var name: String {
        switch self {
        case .empty: "Empty"
        case .ongoing: "Ongoing"
        case .prepareCommit: "PrepareCommit"
        case .prepareAbort: "PrepareAbort"
        case .completeCommit: "CompleteCommit"
        case .completeAbort: "CompleteAbort"
        case .dead: "Dead"
        }
    }

    /// Whether a new transaction may start (the previous one is finished).
    var isComplete: Bool { self == .empty || self == .completeCommit || self == .completeAbort }
}

/// Everything durable about one transactional id. Each change is written to the transaction log
/// before its effects (markers, responses) happen.
public struct TransactionMetadata: Sendable, Equatable {
    public var transactionalId: String
    public var producerId: Int64
    public var producerEpoch: Int16
    /// The id and epoch before the last bump, so a client retrying InitProducerId after a lost
    /// response is recognised (KIP-360) instead of fenced.
    public var lastProducerId: Int64
    public var lastProducerEpoch: Int16
    public var timeoutMs: Int32
    public var state: TransactionState
    public var partitions: Set<TopicPartitionKey>
    /// When the open transaction began (first partition added); timeouts count from it.
    public var startTimestamp: Int64
    public var lastUpdateTimestamp: Int64
    /// Kafka's `clientTransactionVersion`: the transaction version (the `transaction.version`
    /// feature level) of the client behind the current transaction. At 2 (KIP-890 part 2) every
    /// EndTxn bumps the epoch, so an EndTxn retry is recognised by the epoch below the current one.
    public var transactionVersion: Int16
    /// The producer id a prepared transaction moves to once its markers are written: set when a
    /// transactions-V2 end found the epoch exhausted (-1 otherwise). The markers still carry the
    /// old id at its last epoch, fencing it on every partition.
    public var nextProducerId: Int64

    public init(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, lastProducerId: Int64 = -1,
        lastProducerEpoch: Int16 = -1, timeoutMs: Int32, state: TransactionState, partitions: Set<TopicPartitionKey> = [],
        startTimestamp: Int64 = -1, lastUpdateTimestamp: Int64, transactionVersion: Int16 = 0, nextProducerId: Int64 = -1
    ) {
        self.transactionalId = transactionalId
        self.producerId = producerId
        self.producerEpoch = producerEpoch
        self.lastProducerId = lastProducerId
        self.lastProducerEpoch = lastProducerEpoch
        self.timeoutMs = timeoutMs
        self.state = state
        self.partitions = partitions
        self.startTimestamp = startTimestamp
        self.lastUpdateTimestamp = lastUpdateTimestamp
        self.transactionVersion = transactionVersion
        self.nextProducerId = nextProducerId
    }

    /// Whether the current transaction follows transactions V2's rules (an epoch bump per end).
    public var isTransactionV2: Bool { transactionVersion >= 2 }

    public func encoded() -> [UInt8] {
        var w = BinaryWriter()
        w.put(UInt8(2))
        w.put(transactionalId)
        w.put(producerId)
        w.put(producerEpoch)
        w.put(lastProducerId)
        w.put(lastProducerEpoch)
        w.put(timeoutMs)
        w.put(state.rawValue)
        w.put(startTimestamp)
        w.put(lastUpdateTimestamp)
        let sorted = partitions.sorted()
        w.put(UInt32(sorted.count))
        for p in sorted {
            w.put(p.topic)
            w.put(p.partition)
        }
        w.put(transactionVersion)
        w.put(nextProducerId)
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws {
        var r = BinaryReader(bytes)
        let version: UInt8 = try r.get()
        // Version 1 records come from before transactions V2: their transactions are V1.
        guard version == 1 || version == 2 else { throw ProducerStateSnapshot.DecodingError(reason: "transaction record version \(version)") }
        transactionalId = try r.get()
        producerId = try r.get()
        producerEpoch = try r.get()
        lastProducerId = try r.get()
        lastProducerEpoch = try r.get()
        timeoutMs = try r.get()
        let rawState: Int8 = try r.get()
        guard let state = TransactionState(rawValue: rawState) else {
            throw ProducerStateSnapshot.DecodingError(reason: "transaction state \(rawState)")
        }
        self.state = state
        startTimestamp = try r.get()
        lastUpdateTimestamp = try r.get()
        let count: UInt32 = try r.get()
        var partitions = Set<TopicPartitionKey>()
        for _ in 0..<count {
            let topic: String = try r.get()
            partitions.insert(TopicPartitionKey(topic, try r.get()))
        }
        self.partitions = partitions
        transactionVersion = version >= 2 ? try r.get() : 0
        nextProducerId = version >= 2 ? try r.get() : -1
        guard r.isAtEnd else { throw ProducerStateSnapshot.DecodingError(reason: "trailing bytes") }
    }
}
