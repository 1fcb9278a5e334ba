import KafkaProtocol
import Testing

@testable import OnceClient

@Suite struct GroupErrorRecoveryTests {
    @Test func rebalanceAndGenerationErrorsRejoinAtOnce() {
        #expect(GroupErrorRecovery(KafkaError(.rebalanceInProgress)) == .rejoin)
        #expect(GroupErrorRecovery(KafkaError(.illegalGeneration)) == .rejoin)
        #expect(!GroupErrorRecovery.rejoin.backsOff)
    }

    @Test func anUnknownMemberRejoinsAsANewOne() {
        #expect(GroupErrorRecovery(KafkaError(.unknownMemberId)) == .rejoinAsNewMember)
    }

    @Test func coordinatorTroubleLooksTheCoordinatorUpAgainAfterABackoff() {
        for code in [ErrorCode.coordinatorNotAvailable, .notCoordinator, .coordinatorLoadInProgress] {
            #expect(GroupErrorRecovery(KafkaError(code)) == .rediscoverCoordinator)
        }
        #expect(GroupErrorRecovery(KafkaClientError(.connectionClosed, "gone")) == .rediscoverCoordinator)
        #expect(GroupErrorRecovery(KafkaClientError(.requestTimedOut, "slow")) == .rediscoverCoordinator)
        #expect(GroupErrorRecovery.rediscoverCoordinator.backsOff)
    }

    @Test func otherRetriableErrorsRetry() {
        #expect(GroupErrorRecovery(KafkaError(.unstableOffsetCommit)) == .retry)
        #expect(GroupErrorRecovery(KafkaError(.notLeaderOrFollower)) == .retry)
    }

    @Test func whatNoRetryCuresEndsTheSequence() {
        #expect(GroupErrorRecovery(KafkaError(.groupAuthorizationFailed)) == .fail)
        #expect(GroupErrorRecovery(KafkaError(.fencedInstanceId)) == .fail)
        #expect(GroupErrorRecovery(KafkaError(.invalidSessionTimeout)) == .fail)
        #expect(GroupErrorRecovery(KafkaError(.inconsistentGroupProtocol)) == .fail)
        #expect(GroupErrorRecovery(KafkaClientError(.unsupportedApi, "no")) == .fail)
        #expect(GroupErrorRecovery(CancellationError()) == .fail)
    }

    @Test func backoffDoublesUpToOneSecond() {
        #expect(
            (1...7).map { GroupErrorRecovery.backoff(attempt: $0) }
                == [100, 200, 400, 800, 1000, 1000, 1000].map { Duration.milliseconds($0) })
    }
}
