/// The classes of exactly-once violation the checker looks for.
public enum AnomalyKind: String, CaseIterable, Codable, Hashable, Sendable {
    /// A read_committed reader returned a record of an aborted transaction, or a processor's
    /// output was derived from one.
    case abortedRead = "aborted read"
    /// A record was read whose transaction never ended, or that nobody wrote.
    case uncommittedRead = "uncommitted read"
    /// An acknowledged record of a committed transaction, or an acknowledged plain write, that
    /// no reader returned although one read past its offset.
    case lostWrite = "lost write"
    /// One record id at two offsets, or one input record processed into the output twice.
    case duplicate = "duplicate"
    /// A reader saw some, not all, of a transaction's records in a range it read fully.
    case tornTransaction = "torn transaction"
    /// A committed consumer offset whose transaction's output is not visible or that has passed
    /// an input record missing from the output, or visible output whose offset commit did not
    /// take effect.
    case offsetsNotAtomic = "offsets not atomic with output"
    /// InitProducerId gave a transactional id an epoch no higher than before.
    case epochRegression = "epoch regression"
    /// A record was acknowledged to a producer that a newer instance had already fenced.
    case fencedAppend = "fenced producer appended"
    /// A reader's offsets in a partition went backwards or repeated.
    case nonMonotonicRead = "non-monotonic read"
    /// A reader passed over a committed record that another reader returned.
    case skippedRead = "skipped read"
}

/// What the checker found, and what it looked at.
public struct CheckReport: Hashable, Sendable {
    /// Every anomaly found, each with a one-line description, per class.
    public var anomalies: [AnomalyKind: [String]] = [:]
    public var recordsWritten = 0
    public var recordsRead = 0
    public var transactions = 0
    public var transactionsAborted = 0
    public var transactionsUnknown = 0

    public init() {}

    public var anomalyCount: Int { anomalies.values.reduce(0) { $0 + $1.count } }
    public var isClean: Bool { anomalyCount == 0 }

    public func count(_ kind: AnomalyKind) -> Int { anomalies[kind]?.count ?? 0 }

    mutating func add(_ kind: AnomalyKind, _ description: String) {
        anomalies[kind, default: []].append(description)
    }
}
