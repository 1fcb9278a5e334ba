/// A group member's identity at one generation, which a transactional producer passes to
/// `sendOffsets` so the group coordinator can reject offsets from a zombie member (KIP-447).
public struct ConsumerGroupMetadata: Hashable, Sendable {
    public var groupId: String
    /// -1 when the consumer is not in an active generation (manual assignment).
    public var generationId: Int32
    /// Empty when the consumer is not a group member.
    public var memberId: String
    public var groupInstanceId: String?

    public init(groupId: String, generationId: Int32 = -1, memberId: String = "", groupInstanceId: String? = nil) {
        self.groupId = groupId
        self.generationId = generationId
        self.memberId = memberId
        self.groupInstanceId = groupInstanceId
    }
}
