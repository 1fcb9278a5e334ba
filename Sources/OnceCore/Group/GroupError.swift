/// The Kafka errors the group coordinator answers with. OnceCore depends on nothing, so the raw values
/// are Kafka's wire codes and the broker converts them without a lookup table.
public enum GroupError: Int16, Sendable, Error, Hashable {
    case unknownTopicOrPartition = 3
    case offsetMetadataTooLarge = 12
    case coordinatorNotAvailable = 15
    case illegalGeneration = 22
    case inconsistentGroupProtocol = 23
    case invalidGroupId = 24
    case unknownMemberId = 25
    case invalidSessionTimeout = 26
    case rebalanceInProgress = 27
    case nonEmptyGroup = 68
    case groupIdNotFound = 69
    case memberIdRequired = 79
    case fencedInstanceId = 82
    case groupSubscribedToTopic = 86
    case unsupportedVersion = 35
    case invalidRequest = 42
    case groupMaxSizeReached = 81
    case fencedMemberEpoch = 110
    case unreleasedInstanceId = 111
    case unsupportedAssignor = 112
    case staleMemberEpoch = 113
    case invalidRegularExpression = 128
}
