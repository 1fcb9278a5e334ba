/// One change to a KIP-848 group as Kafka records it in `__consumer_offsets` (the consumer-group
/// record types, key versions 3 to 8). A nil value is a tombstone. Replaying a group's records in
/// log order through `ModernGroup.replay` rebuilds it, so a restart loses no epoch and no assignment.
public enum ModernGroupRecord: Sendable, Hashable {
    /// ConsumerGroupMetadata: the group epoch (nil: the group is gone).
    case groupEpoch(Int32?)
    /// ConsumerGroupPartitionMetadata: partition counts of the subscribed topics.
    case subscriptionMetadata([String: Int32]?)
    /// ConsumerGroupMemberMetadata: the member's subscription and client facts.
    case member(String, ModernGroupMember?)
    /// ConsumerGroupTargetAssignmentMetadata: the epoch the target assignment was computed at.
    case targetEpoch(Int32?)
    /// ConsumerGroupTargetAssignmentMember: one member's target.
    case targetMember(String, PartitionAssignment?)
    /// ConsumerGroupCurrentMemberAssignment: the member's epochs, state and owned partitions.
    case currentAssignment(String, ModernGroupMember?)
}

extension ModernGroup {
    /// Applies a record read back from the log. Members come back with a fresh session.
    public mutating func replay(_ record: ModernGroupRecord, now: Int64) {
        switch record {
        case .groupEpoch(let epoch):
            groupEpoch = epoch ?? 0
        case .subscriptionMetadata(let counts):
            subscriptionMetadata = counts ?? [:]
        case .member(let id, let member?):
            var m = members[id] ?? ModernGroupMember(memberId: id, lastHeartbeatMs: now)
            m.instanceId = member.instanceId
            m.rackId = member.rackId
            m.clientId = member.clientId
            m.clientHost = member.clientHost
            m.rebalanceTimeoutMs = member.rebalanceTimeoutMs
            m.subscribedTopicNames = member.subscribedTopicNames
            m.subscribedTopicRegex = member.subscribedTopicRegex
            m.serverAssignor = member.serverAssignor
            m.classic = member.classic
            m.lastHeartbeatMs = now
            members[id] = m
        case .member(let id, nil):
            members[id] = nil
        case .targetEpoch(let epoch):
            assignmentEpoch = epoch ?? 0
        case .targetMember(let id, let target):
            targetAssignment[id] = target
        case .currentAssignment(let id, let member?):
            var m = members[id] ?? ModernGroupMember(memberId: id, lastHeartbeatMs: now)
            m.memberEpoch = member.memberEpoch
            m.previousMemberEpoch = member.previousMemberEpoch
            m.state = member.state
            m.assigned = member.assigned
            m.pendingRevocation = member.pendingRevocation
            if m.state == .unrevokedPartitions { m.revocationDeadlineMs = now + Int64(m.rebalanceTimeoutMs) }
            members[id] = m
        case .currentAssignment:
            break
        }
    }

    /// Every record that recreates the group as it stands, for a snapshot of `__consumer_offsets`.
    public var records: [ModernGroupRecord] {
        var records: [ModernGroupRecord] = [.groupEpoch(groupEpoch), .subscriptionMetadata(subscriptionMetadata)]
        for m in orderedMembers { records.append(.member(m.memberId, m)) }
        for id in targetAssignment.keys.sorted() { records.append(.targetMember(id, targetAssignment[id])) }
        records.append(.targetEpoch(assignmentEpoch))
        for m in orderedMembers { records.append(.currentAssignment(m.memberId, m)) }
        return records
    }

    /// Tombstones that delete the group (members first, the group epoch last, as Kafka does).
    public var tombstones: [ModernGroupRecord] {
        var records: [ModernGroupRecord] = []
        for m in orderedMembers { records.append(.currentAssignment(m.memberId, nil)) }
        for id in targetAssignment.keys.sorted() { records.append(.targetMember(id, nil)) }
        records.append(.targetEpoch(nil))
        for m in orderedMembers { records.append(.member(m.memberId, nil)) }
        records += [.subscriptionMetadata(nil), .groupEpoch(nil)]
        return records
    }
}
