import KafkaProtocol

/// The client side of Kafka's transaction protocol (KIP-98, KIP-447), as plain state: which calls
/// are allowed when, which partitions still need AddPartitionsToTxn, and what a broker answer
/// means for the producer. The producer actor performs the requests the actions name.
///
/// Two rules matter most. A fenced producer is finished: every later call fails with `.fenced`.
/// And a commit whose outcome is unknown is never followed by an abort, because the abort could
/// race the commit the coordinator already logged; the producer re-initialises instead
/// (InitProducerId with its current id and epoch), which makes the coordinator complete the old
/// transaction first (KAFKA-17754).
public struct TransactionStateMachine: Sendable, Hashable {
    public enum State: Hashable, Sendable {
        case uninitialized
        case initializing
        case ready
        case inTransaction
        case committing
        case aborting
        /// The transaction failed; only abort is allowed.
        case abortableError(TransactionError)
        /// The last commit's outcome is unknown; the next call re-initialises first.
        case needsReinitialization
        case fatal(TransactionError)
    }

    public private(set) var state: State = .uninitialized
    /// Partitions the coordinator knows are in the current transaction.
    public private(set) var addedPartitions: Set<TopicPartition> = []
    /// Partitions written to but not yet added; their batches wait.
    public private(set) var pendingPartitions: Set<TopicPartition> = []
    /// Whether AddOffsetsToTxn has put a group's offsets in this transaction.
    public private(set) var hasOffsets = false
    /// Transactions V2: a partition joins the transaction with its first write, so nothing waits
    /// for AddPartitionsToTxn.
    public var addsPartitionsImplicitly = false

    public init() {}

    /// What the producer must do to end a transaction.
    public enum EndAction: Hashable, Sendable {
        /// Nothing reached the coordinator; the transaction ends locally.
        case completeLocally
        /// Flush every record, then send EndTxn.
        case sendEndTxn(commit: Bool)
        /// Abort after an unknown commit outcome: never an EndTxn, re-initialise instead.
        case reinitialize
    }

    /// What an answer from the coordinator means.
    public enum Outcome: Hashable, Sendable {
        case success
        /// A retriable coordinator error (COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR,
        /// CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS): look it up again and resend.
        case retry
        case failed(TransactionError)
    }

    // MARK: Initialisation

    public mutating func initRequested() throws {
        switch state {
        case .uninitialized, .needsReinitialization, .ready: state = .initializing
        case .fatal(let error): throw error
        default: throw invalid("initTransactions while \(state)")
        }
    }

    /// The result of InitProducerId.
    public mutating func initCompleted(_ error: KafkaError?) -> Outcome {
        precondition(state == .initializing, "InitProducerId answered outside initialisation")
        let outcome = Self.classify(error, during: "InitProducerId")
        switch outcome {
        case .success:
            state = .ready
            clearTransaction()
        case .retry: break
        case .failed(let e): state = e.kind == .fenced || e.kind == .fatal ? .fatal(e) : .uninitialized
        }
        return outcome
    }

    /// Whether `begin` must re-initialise first (after an unknown commit outcome).
    public var needsInit: Bool {
        state == .uninitialized || state == .needsReinitialization
    }

    // MARK: Transaction body

    public mutating func beginRequested() throws {
        switch state {
        case .ready:
            state = .inTransaction
            clearTransaction()
        case .fatal(let error): throw error
        case .needsReinitialization, .uninitialized:
            throw invalid("initialise transactions before beginning one")
        default: throw invalid("beginTransaction while \(state)")
        }
    }

    /// A record is about to go to `partition`; returns whether its batch must wait for
    /// AddPartitionsToTxn. Throws unless a transaction is open.
    public mutating func recordAppended(to partition: TopicPartition) throws -> Bool {
        switch state {
        case .inTransaction:
            if addedPartitions.contains(partition) { return false }
            if addsPartitionsImplicitly {
                addedPartitions.insert(partition)
                return false
            }
            pendingPartitions.insert(partition)
            return true
        case .abortableError(let error): throw error
        case .fatal(let error): throw error
        default: throw invalid("send outside a transaction on a transactional producer")
        }
    }

    public func isAdded(_ partition: TopicPartition) -> Bool { addedPartitions.contains(partition) }

    /// The result of AddPartitionsToTxn for `partitions`.
    public mutating func partitionsAdded(_ partitions: Set<TopicPartition>, error: KafkaError?) -> Outcome {
        let outcome = Self.classify(error, during: "AddPartitionsToTxn")
        switch outcome {
        case .success:
            addedPartitions.formUnion(partitions)
            pendingPartitions.subtract(partitions)
        case .retry: break
        case .failed(let e): fail(e)
        }
        return outcome
    }

    /// Checks that offsets may be sent now (sendOffsets).
    public func offsetsRequested() throws {
        switch state {
        case .inTransaction: return
        case .abortableError(let error), .fatal(let error): throw error
        default: throw invalid("sendOffsets outside a transaction")
        }
    }

    /// The result of AddOffsetsToTxn or TxnOffsetCommit.
    public mutating func offsetsAdded(error: KafkaError?, during step: String) -> Outcome {
        let outcome = Self.classify(error, during: step)
        switch outcome {
        case .success: hasOffsets = true
        case .retry: break
        case .failed(let e): fail(e)
        }
        return outcome
    }

    /// A record of the transaction failed to be written; the transaction cannot commit.
    public mutating func produceFailed(_ error: any Error) {
        guard state == .inTransaction else { return }
        if let kafka = error as? KafkaError, case .failed(let e) = Self.classify(kafka, during: "Produce"), e.kind == .fenced {
            fail(e)
            return
        }
        fail(TransactionError(.abortRequired, "a record of the transaction failed: \(error)", underlying: error as? KafkaError))
    }

    // MARK: Ending

    public mutating func commitRequested() throws -> EndAction {
        switch state {
        case .inTransaction:
            state = .committing
            return addedPartitions.isEmpty && pendingPartitions.isEmpty && !hasOffsets ? .completeLocally : .sendEndTxn(commit: true)
        case .abortableError(let error):
            throw TransactionError(.abortRequired, "cannot commit: \(error.description)", underlying: error.underlying)
        case .fatal(let error): throw error
        default: throw invalid("commitTransaction while \(state)")
        }
    }

    public mutating func abortRequested() throws -> EndAction {
        switch state {
        case .inTransaction, .abortableError:
            state = .aborting
            return addedPartitions.isEmpty && !hasOffsets ? .completeLocally : .sendEndTxn(commit: false)
        case .needsReinitialization: return .reinitialize
        case .fatal(let error): throw error
        default: throw invalid("abortTransaction while \(state)")
        }
    }

    /// Ends a transaction that never reached the coordinator.
    public mutating func completedLocally() {
        precondition(state == .committing || state == .aborting, "nothing is ending")
        state = .ready
        clearTransaction()
    }

    /// The result of EndTxn. `ambiguous` is set when no answer came (timeout, connection lost):
    /// the coordinator may or may not have logged the decision.
    public mutating func endCompleted(error: KafkaError?, ambiguous: Bool) -> Outcome {
        let committing = state == .committing
        precondition(committing || state == .aborting, "EndTxn answered with no transaction ending")
        if ambiguous {
            let e = TransactionError(
                .outcomeUnknown,
                "\(committing ? "commit" : "abort") outcome unknown; the producer re-initialises before the next transaction")
            state = .needsReinitialization
            clearTransaction()
            return .failed(e)
        }
        let outcome = Self.classify(error, during: "EndTxn")
        switch outcome {
        case .success:
            state = .ready
            clearTransaction()
        case .retry: break
        case .failed(let e):
            if e.kind == .fenced || e.kind == .fatal {
                state = .fatal(e)
            } else if committing {
                state = .abortableError(e)
            } else {
                // An abort that failed outright leaves the coordinator to time the transaction out;
                // re-initialising resolves it sooner.
                state = .needsReinitialization
                clearTransaction()
            }
        }
        return outcome
    }

    // MARK: Rules

    /// Sorts a coordinator error into retry, fencing, or an error that ends the transaction.
    public static func classify(_ error: KafkaError?, during step: String) -> Outcome {
        guard let error else { return .success }
        switch error.code {
        case .coordinatorNotAvailable, .notCoordinator, .concurrentTransactions, .coordinatorLoadInProgress,
            .requestTimedOut, .unknownTopicOrPartition, .notLeaderOrFollower, .leaderNotAvailable:
            return .retry
        case .producerFenced, .invalidProducerEpoch, .transactionCoordinatorFenced:
            return .failed(TransactionError(.fenced, "\(step): fenced by a newer producer with the same transactional id", underlying: error))
        case .transactionalIdAuthorizationFailed, .invalidTransactionTimeout, .invalidProducerIdMapping:
            return .failed(TransactionError(.fatal, "\(step): \(error)", underlying: error))
        default:
            return .failed(TransactionError(.abortRequired, "\(step): \(error)", underlying: error))
        }
    }

    private mutating func fail(_ error: TransactionError) {
        switch error.kind {
        case .fenced, .fatal: state = .fatal(error)
        default: if state == .inTransaction { state = .abortableError(error) }
        }
    }

    private mutating func clearTransaction() {
        addedPartitions = []
        pendingPartitions = []
        hasOffsets = false
    }

    private func invalid(_ what: String) -> TransactionError {
        TransactionError(.invalidState, what)
    }
}
