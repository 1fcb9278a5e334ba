import KafkaProtocol

/// Why a transactional operation failed, in the terms that decide what the caller does next.
public struct TransactionError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// A newer producer with the same transactional id has started (PRODUCER_FENCED,
        /// INVALID_PRODUCER_EPOCH from the coordinator). This producer can do nothing more: close
        /// it. Its open transaction is aborted by the coordinator.
        case fenced
        /// The current transaction failed and must be aborted before a new one begins.
        case abortRequired
        /// The commit's outcome is unknown (it timed out or the link dropped). The producer does
        /// not abort: it re-initialises before the next transaction, which lets the coordinator
        /// finish the old one (KAFKA-17754). Whether it committed is decided by the broker.
        case outcomeUnknown
        /// The call does not fit the producer's state (commit without begin, a second begin...).
        case invalidState
        /// The producer cannot continue (e.g. authorisation failed); close it.
        case fatal
    }

    public var kind: Kind
    public var description: String
    /// The broker's error, when one caused this.
    public var underlying: KafkaError?

    public init(_ kind: Kind, _ description: String, underlying: KafkaError? = nil) {
        self.kind = kind
        self.description = description
        self.underlying = underlying
    }

    public static func == (lhs: TransactionError, rhs: TransactionError) -> Bool { lhs.kind == rhs.kind }
    public func hash(into hasher: inout Hasher) { hasher.combine(kind) }

    /// Lets `catch let e as TransactionError where e ~= .fenced` read naturally.
    public static func ~= (pattern: Kind, value: TransactionError) -> Bool { pattern == value.kind }
}
