/// A consumer's membership of its group: subscription, identity in the current generation, and
/// whether it must (re)join.
struct GroupMemberState: Sendable {
    var groupId: String
    var topics: [String]
    var memberId = ""
    var generationId: Int32 = -1
    var needsJoin = true
    var assigned: [TopicPartition] = []
    var protocolName: String?
    /// Joined with KIP-848's ConsumerGroupHeartbeat; `generationId` then holds the member epoch.
    var usesConsumerProtocol = false
}
