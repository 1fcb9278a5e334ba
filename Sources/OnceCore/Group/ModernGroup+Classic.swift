/// KIP-848's online migration: classic members (JoinGroup/SyncGroup/Heartbeat) inside a consumer
/// group, and the conversions a non-empty group goes through when its first consumer-protocol
/// member arrives (upgrade) or its last one leaves (downgrade), as Kafka 4.0's group coordinator
/// does under `group.consumer.migration.policy`. A classic member is reconciled like any other;
/// it learns of a new target through REBALANCE_IN_PROGRESS on its heartbeat and rejoins to take it.
extension ModernGroup {
    /// The consumer protocol's embedded protocol type, the only one a consumer group can host.
    public static let consumerProtocolType = "consumer"

    /// What a classic member's subscription bytes say; the broker decodes them (OnceCore reads no wire format).
    public struct ClassicSubscription: Sendable, Hashable {
        public var topics: [String]
        public var ownedPartitions: PartitionAssignment
        public var rackId: String?

        public init(topics: [String], ownedPartitions: PartitionAssignment = [:], rackId: String? = nil) {
            self.topics = topics
            self.ownedPartitions = ownedPartitions
            self.rackId = rackId
        }
    }

    // MARK: Upgrade

    /// Kafka's `validateOnlineUpgrade`: the policy allows it, the members speak the consumer
    /// protocol (whose subscriptions the coordinator can read), and they fit the consumer group.
    public static func canUpgrade(_ classic: ConsumerGroup, config: GroupConfig) -> Bool {
        config.consumerMigrationPolicy.upgradeEnabled && classic.protocolType == consumerProtocolType
            && classic.members.count <= config.consumerMaxSize
    }

    /// The consumer group a classic group becomes (Kafka's `ConsumerGroup.fromClassicGroup`): every
    /// member keeps its partitions at the classic generation, which becomes the group and target
    /// epoch, so nothing moves until the joining member's heartbeat bumps the epoch.
    /// `decoded` holds each member's subscription and assignment for the group's protocol.
    public init(
        upgrading classic: ConsumerGroup, decoded: [String: (ClassicSubscription, PartitionAssignment)], now: Int64
    ) {
        self.init(groupId: classic.groupId, config: classic.config, now: now)
        groupEpoch = classic.generationId
        assignmentEpoch = classic.generationId
        for m in classic.orderedMembers {
            let (subscription, assigned) = decoded[m.memberId] ?? (ClassicSubscription(topics: []), [:])
            var member = ModernGroupMember(
                memberId: m.memberId, instanceId: m.groupInstanceId, rackId: subscription.rackId, clientId: m.clientId,
                clientHost: m.clientHost, rebalanceTimeoutMs: m.rebalanceTimeoutMs,
                subscribedTopicNames: subscription.topics, lastHeartbeatMs: now)
            member.classic = ClassicMemberMetadata(sessionTimeoutMs: m.sessionTimeoutMs, protocols: m.protocols)
            member.memberEpoch = classic.generationId
            member.previousMemberEpoch = classic.generationId
            member.assigned = assigned
            members[m.memberId] = member
            targetAssignment[m.memberId] = assigned
        }
    }

    // MARK: Classic members

    /// Kafka's `supportsClassicProtocols`: the consumer protocol type, and a protocol every
    /// classic member already in the group speaks.
    func supportsClassic(protocolType: String, protocols: [GroupProtocol]) -> Bool {
        guard protocolType == Self.consumerProtocolType, !protocols.isEmpty else { return false }
        let classicMembers = members.values.compactMap(\.classic)
        return protocols.contains { p in classicMembers.allSatisfy { $0.protocols.contains { $0.name == p.name } } }
    }

    /// JoinGroup from a classic member (Kafka's `classicGroupJoinToConsumerGroup`): answered at
    /// once, at the member's epoch after one reconciliation step, with no leader, so the member
    /// syncs as a follower and receives what the server-side assignor gave it.
    public mutating func classicJoinReceived(
        _ join: ConsumerGroup.JoinRequest, subscription: ClassicSubscription, topics: [String: Int32], now: Int64
    ) -> (result: JoinGroupResult, records: [ModernGroupRecord]) {
        func reject(_ error: GroupError, _ memberId: String = join.memberId) -> (JoinGroupResult, [ModernGroupRecord]) {
            (JoinGroupResult(error: error, memberId: memberId), [])
        }
        let unknown = join.memberId.isEmpty
        let memberId = unknown ? join.newMemberId : join.memberId
        let existingStatic = join.groupInstanceId.flatMap(staticMember)
        if members.count >= config.consumerMaxSize && members[memberId] == nil && existingStatic == nil {
            return reject(.groupMaxSizeReached)
        }
        guard supportsClassic(protocolType: join.protocolType, protocols: join.protocols) else {
            return reject(.inconsistentGroupProtocol)
        }
        if unknown && join.groupInstanceId == nil && join.requireKnownMemberId { return reject(.memberIdRequired, memberId) }

        var records: [ModernGroupRecord] = []
        var member: ModernGroupMember
        if let instance = join.groupInstanceId, let existing = existingStatic {
            if unknown {
                // A restarted static member takes over its old incarnation's place and partitions.
                member = existing
                member.memberId = memberId
                records += removalRecords(existing.memberId)
                members[existing.memberId] = nil
                targetAssignment[memberId] = targetAssignment.removeValue(forKey: existing.memberId) ?? [:]
                records.append(.targetMember(memberId, targetAssignment[memberId]))
            } else {
                guard existing.memberId == memberId else { return reject(.fencedInstanceId) }
                guard existing.classic != nil else { return reject(.unknownMemberId) }
                member = existing
            }
            member.instanceId = instance
        } else if let existing = members[memberId] {
            guard existing.classic != nil else { return reject(.unknownMemberId) }
            member = existing
        } else {
            guard join.groupInstanceId == nil || unknown else { return reject(.unknownMemberId) }
            member = ModernGroupMember(memberId: memberId, instanceId: join.groupInstanceId, lastHeartbeatMs: now)
        }

        var updated = member
        if let rack = subscription.rackId { updated.rackId = rack }
        if join.rebalanceTimeoutMs != -1 { updated.rebalanceTimeoutMs = join.rebalanceTimeoutMs }
        updated.subscribedTopicNames = subscription.topics
        updated.clientId = join.clientId
        updated.clientHost = join.clientHost
        updated.classic = ClassicMemberMetadata(sessionTimeoutMs: join.sessionTimeoutMs, protocols: join.protocols)
        updated.lastHeartbeatMs = now
        let previous = members[memberId] ?? member
        updated.rejoinDeadlineMs = nil
        var reconciled = admit(
            updated, replacing: previous, owned: subscription.ownedPartitions, topics: topics, now: now, records: &records)
        // The sync timeout: the member must come for its assignment within its rebalance timeout.
        reconciled.rejoinDeadlineMs = now + Int64(reconciled.rebalanceTimeoutMs)
        members[memberId] = reconciled

        var result = JoinGroupResult(memberId: memberId)
        result.generationId = reconciled.memberEpoch
        result.protocolType = Self.consumerProtocolType
        result.protocolName = join.protocols.first?.name
        return (result, records)
    }

    /// The member a classic request names (Kafka's `validateConsumerGroupMember` and
    /// `throwIfMemberDoesNotUseClassicProtocol`).
    private func classicMember(_ memberId: String, instanceId: String?) -> Result<ModernGroupMember, GroupError> {
        let member: ModernGroupMember
        if let instanceId {
            guard let found = staticMember(instanceId) else { return .failure(.unknownMemberId) }
            guard found.memberId == memberId else { return .failure(.fencedInstanceId) }
            member = found
        } else {
            guard let found = members[memberId] else { return .failure(.unknownMemberId) }
            member = found
        }
        return member.classic == nil ? .failure(.unknownMemberId) : .success(member)
    }

    /// SyncGroup from a classic member: its assignment is already decided server-side, so it is
    /// handed back unless a newer epoch means the member must rejoin first.
    public mutating func classicSyncReceived(
        memberId: String, instanceId: String?, generationId: Int32, protocolType: String?, protocolName: String?,
        now: Int64
    ) -> Result<ModernGroupMember, GroupError> {
        let member: ModernGroupMember
        switch classicMember(memberId, instanceId: instanceId) {
        case .failure(let error): return .failure(error)
        case .success(let found): member = found
        }
        guard generationId == member.memberEpoch else { return .failure(.illegalGeneration) }
        if let protocolType, protocolType != Self.consumerProtocolType { return .failure(.inconsistentGroupProtocol) }
        if let protocolName, protocolName != member.classic?.protocols.first?.name { return .failure(.inconsistentGroupProtocol) }
        members[member.memberId]!.lastHeartbeatMs = now
        // A member still revoking has rejoined already; it finishes revoking before the next join.
        if groupEpoch > member.memberEpoch && member.state != .unrevokedPartitions {
            askToRejoin(member.memberId, now: now)
            return .failure(.rebalanceInProgress)
        }
        members[member.memberId]!.rejoinDeadlineMs = nil
        return .success(members[member.memberId]!)
    }

    /// Heartbeat from a classic member: REBALANCE_IN_PROGRESS whenever a rejoin would move it
    /// forward (a newer epoch, partitions to revoke, or partitions it waited for now free).
    public mutating func classicHeartbeatReceived(
        memberId: String, instanceId: String?, generationId: Int32, now: Int64
    ) -> GroupError? {
        let member: ModernGroupMember
        switch classicMember(memberId, instanceId: instanceId) {
        case .failure(let error): return error
        case .success(let found): member = found
        }
        guard generationId == member.memberEpoch else { return .illegalGeneration }
        members[member.memberId]!.lastHeartbeatMs = now
        if member.memberEpoch < groupEpoch || member.state == .unrevokedPartitions
            || (member.state == .unreleasedPartitions && !waitingOnUnreleasedPartition(member))
        {
            askToRejoin(member.memberId, now: now)
            return .rebalanceInProgress
        }
        return nil
    }

    /// The join timeout: a member told REBALANCE_IN_PROGRESS must rejoin within its rebalance
    /// timeout, or it is fenced and its partitions move; set once, as Kafka's `IfAbsent`.
    private mutating func askToRejoin(_ memberId: String, now: Int64) {
        guard let member = members[memberId], member.rejoinDeadlineMs == nil else { return }
        members[memberId]!.rejoinDeadlineMs = now + Int64(member.rebalanceTimeoutMs)
    }

    /// Whether some partition of the member's target is still held by another member.
    func waitingOnUnreleasedPartition(_ member: ModernGroupMember) -> Bool {
        let missing = (targetAssignment[member.memberId] ?? [:]).subtracting(member.assigned)
        return missing.contains { topic, partitions in
            partitions.contains { owner(of: topic, $0, except: member.memberId) != nil }
        }
    }

    /// LeaveGroup from classic members; one result per member (nil: left).
    public mutating func classicLeaveReceived(
        _ leaving: [ConsumerGroup.Leaving], now: Int64
    ) -> (results: [GroupError?], records: [ModernGroupRecord]) {
        var records: [ModernGroupRecord] = []
        let results: [GroupError?] = leaving.map { who in
            let member: ModernGroupMember
            if let instance = who.groupInstanceId {
                guard let found = staticMember(instance) else { return .unknownMemberId }
                // Admin tools remove a static member by instance id alone.
                if !who.memberId.isEmpty && who.memberId != found.memberId { return .fencedInstanceId }
                member = found
            } else {
                guard let found = members[who.memberId] else { return .unknownMemberId }
                member = found
            }
            guard member.classic != nil else { return .unknownMemberId }
            records += removalRecords(member.memberId)
            members[member.memberId] = nil
            targetAssignment[member.memberId] = nil
            return nil
        }
        guard !records.isEmpty else { return (results, []) }
        // One request, one rebalance: the epoch is bumped once however many members left, as Kafka does.
        if members.isEmpty { stateTimestampMs = now }
        groupEpoch += 1
        records.append(.groupEpoch(groupEpoch))
        return (results, records)
    }

    // MARK: Downgrade

    /// Kafka's `validateOnlineDowngradeWithFencedMember`: once `leaving` are gone, members remain
    /// and every one of them speaks the classic protocol, and the policy allows the downgrade.
    public func downgradesOnRemoving(_ leaving: Set<String>) -> Bool {
        let remaining = members.values.filter { !leaving.contains($0.memberId) }
        return config.consumerMigrationPolicy.downgradeEnabled && !leaving.isDisjoint(with: members.keys)
            && !remaining.isEmpty && remaining.allSatisfy { $0.classic != nil }
    }

    /// The classic group the remaining members form (Kafka's `ClassicGroup.fromConsumerGroup`):
    /// at the group epoch, each member holding its target assignment (`encode` turns it into the
    /// consumer protocol's bytes), rebalancing so every member rejoins as a classic one.
    public func downgraded(
        removing leaving: Set<String>, encode: (ModernGroupMember, PartitionAssignment) -> [UInt8], now: Int64
    ) -> (group: ConsumerGroup, actions: [GroupAction]) {
        let converted = orderedMembers.filter { !leaving.contains($0.memberId) }.map { m in
            GroupMember(
                memberId: m.memberId, groupInstanceId: m.instanceId, clientId: m.clientId, clientHost: m.clientHost,
                sessionTimeoutMs: m.classic?.sessionTimeoutMs ?? config.consumerSessionTimeoutMs,
                rebalanceTimeoutMs: m.rebalanceTimeoutMs, protocolType: Self.consumerProtocolType,
                protocols: m.classic?.protocols ?? [], assignment: encode(m, targetAssignment[m.memberId] ?? [:]),
                lastHeartbeatMs: now)
        }
        var group = ConsumerGroup(groupId: groupId, converting: converted, generationId: groupEpoch, config: config, now: now)
        var actions: [GroupAction] = [.persistGroup(group.snapshot)]
        actions += group.rebalance(now: now)
        return (group, actions)
    }
}
