import KafkaProtocol

/// What a group member does after a JoinGroup, SyncGroup or offset lookup fails. Group
/// membership is expected to be interrupted (rebalances, coordinator moves, dropped
/// connections), so like the Java client and librdkafka the consumer retries everything but
/// errors that no retry can cure; only those end its record sequence.
enum GroupErrorRecovery: Hashable, Sendable {
    /// Join again at once with the same member id: another rebalance started
    /// (REBALANCE_IN_PROGRESS) or the generation moved on (ILLEGAL_GENERATION).
    case rejoin
    /// The coordinator forgot the member (UNKNOWN_MEMBER_ID): join with an empty member id.
    case rejoinAsNewMember
    /// The coordinator moved, is loading, or its connection dropped: look it up again after a
    /// backoff (every coordinator call starts with FindCoordinator).
    case rediscoverCoordinator
    /// Another retriable error: try again after a backoff.
    case retry
    /// Not curable by retrying (authorization, fenced static member, bad configuration,
    /// cancellation): surface it.
    case fail

    init(_ error: any Error) {
        if let error = error as? KafkaError {
            switch error.code {
            case .rebalanceInProgress, .illegalGeneration:
                self = .rejoin
            case .unknownMemberId, .fencedMemberEpoch:
                // KIP-848: a fenced member gives up its partitions and joins again from epoch 0.
                self = .rejoinAsNewMember
            case .staleMemberEpoch:
                self = .rejoin
            case .coordinatorNotAvailable, .notCoordinator, .coordinatorLoadInProgress:
                self = .rediscoverCoordinator
            case .unstableOffsetCommit:
                self = .retry
            default:
                self = error.isRetriable ? .retry : .fail
            }
        } else if let error = error as? KafkaClientError {
            switch error.kind {
            case .cannotConnect, .connectionClosed, .requestTimedOut:
                self = .rediscoverCoordinator
            default:
                self = .fail
            }
        } else {
            self = .fail
        }
    }

    /// Whether to wait before the next attempt; rejoins go at once, as the coordinator is
    /// waiting for this member.
    var backsOff: Bool { self == .rediscoverCoordinator || self == .retry }

    /// 100 ms doubling per attempt up to 1 s (the Java client's retry.backoff defaults).
    static func backoff(attempt: Int) -> Duration {
        .milliseconds(min(1_000, 100 << min(max(attempt - 1, 0), 4)))
    }
}
