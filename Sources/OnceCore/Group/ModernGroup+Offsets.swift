/// Who may commit and fetch a KIP-848 group's offsets: the member epoch replaces the classic
/// generation, and a commit from an older epoch is stale, because its partitions may have moved.
extension ModernGroup {
    /// OffsetCommit (and the group part of TxnOffsetCommit). nil when the commit may proceed.
    /// `memberEpochAware` is OffsetCommit v9+, the first version whose epoch field is a member epoch.
    public func offsetCommitReceived(
        memberId: String, instanceId: String? = nil, memberEpoch: Int32, transactional: Bool, memberEpochAware: Bool
    ) -> GroupError? {
        // Admin tools and assign()-based consumers commit with epoch -1 while nobody is a member.
        if memberEpoch < 0 && members.isEmpty { return nil }
        // TxnOffsetCommit's group fields are optional (producers from before KIP-447 send none);
        // they are checked only when sent, as for classic groups.
        if transactional && memberEpoch < 0 && memberId.isEmpty && instanceId == nil { return nil }
        guard let member = members[memberId] else { return .unknownMemberId }
        // A classic member inside a consumer group commits with its usual OffsetCommit versions.
        if !transactional && !memberEpochAware && member.classic == nil { return .unsupportedVersion }
        let error = Self.checkEpoch(memberEpoch, of: member)
        // TxnOffsetCommit has no STALE_MEMBER_EPOCH: a stale epoch is ILLEGAL_GENERATION, as in Kafka.
        return transactional && error == .staleMemberEpoch ? .illegalGeneration : error
    }

    /// A classic member's epoch is its generation, and a wrong one is ILLEGAL_GENERATION, as for
    /// classic groups; a consumer-protocol member's is STALE_MEMBER_EPOCH.
    private static func checkEpoch(_ epoch: Int32, of member: ModernGroupMember) -> GroupError? {
        guard epoch != member.memberEpoch else { return nil }
        return member.classic == nil ? .staleMemberEpoch : .illegalGeneration
    }

    /// OffsetFetch v9+ names the member and its epoch; without them (admin, older clients) anyone may read.
    public func offsetFetchReceived(memberId: String?, memberEpoch: Int32) -> GroupError? {
        guard let memberId else { return memberEpoch < 0 ? nil : .unknownMemberId }
        guard let member = members[memberId] else { return .unknownMemberId }
        return Self.checkEpoch(memberEpoch, of: member)
    }
}
