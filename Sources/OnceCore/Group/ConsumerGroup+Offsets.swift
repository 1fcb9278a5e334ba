/// Committed offsets: who may commit in which state, and when an empty group's offsets lapse.
extension ConsumerGroup {
    /// Validates an OffsetCommit (or the group part of a TxnOffsetCommit) before it is written.
    /// Returns nil when the commit may proceed; a member's commit also proves its session alive.
    ///
    /// A "simple" commit (generation -1) is how `assign()`-based consumers store positions; it is
    /// allowed only while the group has no members, so it cannot clobber a live group's progress.
    ///
    /// A transactional commit (TxnOffsetCommit) is accepted while the group completes a rebalance,
    /// as in Kafka: its offsets take effect only with the transaction, which the member's current
    /// generation began.
    public mutating func offsetCommitReceived(
        memberId: String, groupInstanceId: String?, generationId: Int32, transactional: Bool = false, now: Int64
    ) -> GroupError? {
        // KIP-447: a transactional commit without group metadata (generation -1, no member) comes
        // from a producer older than it and is taken unchecked, as before it.
        if transactional && generationId < 0 && memberId.isEmpty { return nil }
        if state == .dead { return .coordinatorNotAvailable }
        if state == .empty {
            // Positive generations in an empty group come from members of a generation that is over.
            return generationId < 0 ? nil : .illegalGeneration
        }
        if let error = identify(memberId: memberId, groupInstanceId: groupInstanceId) { return error }
        guard generationId == self.generationId else { return .illegalGeneration }
        // Between JoinGroup and SyncGroup nobody owns partitions yet; eager consumers commit while
        // PreparingRebalance (revocation), which the current generation is still entitled to.
        if state == .completingRebalance && !transactional { return .rebalanceInProgress }
        members[memberId]!.lastHeartbeatMs = now
        return nil
    }

    /// Applies offsets that are now durable (after a commit, or while replaying the log).
    public mutating func offsetsCommitted(_ committed: [GroupPartition: CommittedOffset]) {
        offsets.merge(committed) { _, new in new }
    }

    /// Drops offsets (OffsetDelete, a deleted topic, a tombstone during replay).
    public mutating func offsetsRemoved(_ partitions: some Sequence<GroupPartition>) {
        for p in partitions { offsets[p] = nil }
    }

    /// The topics the members subscribe to are decided by the client protocol; the driver passes
    /// them in. OffsetDelete may not remove the offsets of a topic a live group consumes.
    public func canDeleteOffsets(of topic: String, subscribedTopics: Set<String>) -> GroupError? {
        if state == .dead { return .groupIdNotFound }
        if state != .empty && subscribedTopics.contains(topic) { return .groupSubscribedToTopic }
        return nil
    }

    /// Offsets past retention (`offsets.retention.minutes`). Only an empty group loses offsets, and
    /// the clock starts when it became empty (KIP-211); a group that never had members (simple
    /// commits only) counts from each commit.
    public func expiredOffsets(now: Int64) -> [GroupPartition] {
        guard state == .empty else { return [] }
        return offsets.compactMap { partition, committed in
            let since = protocolType == nil ? committed.commitTimestampMs : max(committed.commitTimestampMs, stateTimestampMs)
            return now >= since + config.offsetsRetentionMs ? partition : nil
        }.sorted()
    }

    /// An empty group with no offsets left is forgotten, as Kafka does in its cleanup pass.
    public var isForgettable: Bool {
        state == .empty && offsets.isEmpty && pendingMembers.isEmpty
    }

    /// DeleteGroups: only a group without members can go. On success the group is Dead; the driver
    /// writes tombstones for its metadata and offsets and forgets it.
    public mutating func deleteReceived(now: Int64) -> GroupError? {
        switch state {
        case .dead: return .groupIdNotFound
        case .empty:
            pendingMembers = [:]
            offsets = [:]
            transition(to: .dead, now: now)
            return nil
        default: return .nonEmptyGroup
        }
    }
}
