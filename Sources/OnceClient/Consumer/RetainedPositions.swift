/// The fetch positions a member held when it started rejoining its group. Partitions the next
/// generation gives back continue where they were instead of at the committed offset, so a
/// rebalance does not replay what this member already read (the cooperative protocol's
/// behaviour, KIP-429).
///
/// They are kept only when nobody else can have owned a partition in between: the member
/// rejoined under the same member id and the new generation directly follows the old one.
/// A member that was dropped from the group (new member id) or missed a generation restarts
/// from the committed offsets, which another owner may have moved.
struct RetainedPositions: Hashable, Sendable {
    var memberId: String
    var generationId: Int32
    var positions: [TopicPartition: Int64]

    func positions(memberId: String, generationId: Int32, assigned: [TopicPartition]) -> [TopicPartition: Int64] {
        guard !memberId.isEmpty, memberId == self.memberId, self.generationId >= 0,
            generationId == self.generationId + 1
        else { return [:] }
        let wanted = Set(assigned)
        return positions.filter { wanted.contains($0.key) }
    }
}
