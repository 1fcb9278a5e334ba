import KafkaProtocol
import NIOCore
import OnceCore

/// The KIP-848 half of the coordinator: runs `ModernGroup` heartbeats against the topics as they
/// are now, serves classic members inside consumer groups, converts groups between the protocols
/// (KIP-848's upgrade and downgrade), and writes the group's records through `__consumer_offsets`
/// before the answer leaves.
extension GroupCoordinator {
    /// `wrote` says the heartbeat changed the group, so its answer waits for the append linger.
    func consumerHeartbeat(groupId: String, _ hb: ModernGroup.Heartbeat) -> (result: ModernGroup.HeartbeatResult, wrote: Bool) {
        let now = clock()
        let topics = topicPartitionCounts()
        let (answer, completions) = state.withLockedValue {
            s -> ((result: ModernGroup.HeartbeatResult, wrote: Bool), Completions) in
            var completions = Completions()
            var group: ModernGroup
            var converted: [ModernGroupRecord] = []
            if let existing = s.modern[groupId] {
                group = existing
            } else {
                guard hb.memberEpoch == 0 else {
                    return ((ModernGroup.HeartbeatResult(error: .groupIdNotFound, errorMessage: "Consumer group \(groupId) not found."), false), completions)
                }
                if let classic = s.groups[groupId], classic.state != .empty {
                    // KIP-848's upgrade path: the classic group's members keep their partitions
                    // inside the consumer group it becomes, when the policy allows.
                    guard ModernGroup.canUpgrade(classic, config: config), let upgraded = Self.upgraded(classic, now: now) else {
                        return ((ModernGroup.HeartbeatResult(error: .groupIdNotFound, errorMessage: "Group \(groupId) is not a consumer group."), false), completions)
                    }
                    guard append([.group(groupId, nil)], now: now) != nil else {
                        return ((ModernGroup.HeartbeatResult(error: .coordinatorNotAvailable), false), completions)
                    }
                    completions = perform(classic.parkedRequestsRejected(), in: &s, now: now)
                    s.groups[groupId] = Self.offsetsOnly(classic, config: config, now: now)
                    group = upgraded
                    converted = upgraded.records
                    logger.info("classic group upgraded to a consumer group", metadata: ["group": "\(groupId)"])
                } else {
                    if let classic = s.groups[groupId], classic.protocolType != nil {
                        guard append([.group(groupId, nil)], now: now) != nil else {
                            return ((ModernGroup.HeartbeatResult(error: .coordinatorNotAvailable), false), completions)
                        }
                        s.groups[groupId] = Self.offsetsOnly(classic, config: config, now: now)
                    }
                    group = ModernGroup(groupId: groupId, config: config, now: now)
                }
            }
            let before = group
            let (result, records) = group.heartbeatReceived(hb, topics: topics, now: now)
            if hb.memberEpoch == ModernGroup.leaveEpoch, result.error == nil, before.downgradesOnRemoving([hb.memberId]),
                let more = downgrade(groupId, before, removing: [hb.memberId], in: &s, now: now)
            {
                return ((result, true), more)
            }
            // Nothing written, nothing changed: the member retries against the old state.
            guard appendModern(groupId, converted + records, now: now) else {
                return ((ModernGroup.HeartbeatResult(error: .coordinatorNotAvailable), false), completions)
            }
            // A rejected heartbeat changed nothing, and must not create a group; a conversion stands.
            if result.error == nil { s.modern[groupId] = group } else if !converted.isEmpty { s.modern[groupId] = before }
            return ((result, !records.isEmpty || !converted.isEmpty), completions)
        }
        completions.run()
        return answer
    }

    /// The classic group's offsets alone: offsets are shared by both protocols, so they stay in
    /// the classic entry while the consumer group holds the membership.
    private static func offsetsOnly(_ classic: ConsumerGroup, config: GroupConfig, now: Int64) -> ConsumerGroup {
        var group = ConsumerGroup(groupId: classic.groupId, config: config, now: now)
        group.offsetsCommitted(classic.offsets)
        return group
    }

    /// The consumer group a classic one becomes; nil when a member's embedded subscription or
    /// assignment cannot be read (Kafka then refuses the upgrade).
    private static func upgraded(_ classic: ConsumerGroup, now: Int64) -> ModernGroup? {
        var decoded: [String: (ModernGroup.ClassicSubscription, PartitionAssignment)] = [:]
        for m in classic.orderedMembers {
            guard let subscription = ConsumerProtocolBytes.subscription(m.metadata(for: classic.protocolName ?? m.protocols.first?.name)),
                let assigned = ConsumerProtocolBytes.assignment(m.assignment)
            else { return nil }
            decoded[m.memberId] = (subscription, assigned)
        }
        return ModernGroup(upgrading: classic, decoded: decoded, now: now)
    }

    /// KIP-848's downgrade: the consumer group's records are deleted and the classic group its
    /// remaining members form is written, with the offsets kept; nil (nothing changed) when
    /// storage refuses.
    func downgrade(_ groupId: String, _ modern: ModernGroup, removing leaving: Set<String>, in s: inout State, now: Int64) -> Completions? {
        let (classic, actions) = modern.downgraded(
            removing: leaving, encode: { m, a in ConsumerProtocolBytes.encode(a, like: m.classic?.protocols.first?.metadata) },
            now: now)
        guard appendModern(groupId, modern.tombstones, now: now) else { return nil }
        var group = classic
        group.offsetsCommitted(s.groups[groupId]?.offsets ?? [:])
        s.groups[groupId] = group
        s.modern[groupId] = nil
        logger.info("consumer group downgraded to a classic group", metadata: ["group": "\(groupId)"])
        return perform(actions, in: &s, now: now)
    }

    /// JoinGroup from a classic member of a consumer group, answered at once.
    func classicJoinToModern(
        _ groupId: String, _ request: ConsumerGroup.JoinRequest, token: RequestToken, topics: [String: Int32],
        in s: inout State, now: Int64
    ) -> GroupAction {
        var group = s.modern[groupId]!
        let subscription = request.protocols.first.flatMap { ConsumerProtocolBytes.subscription($0.metadata) }
        guard let subscription else {
            return .completeJoin(token, JoinGroupResult(error: .inconsistentGroupProtocol, memberId: request.memberId))
        }
        let (result, records) = group.classicJoinReceived(request, subscription: subscription, topics: topics, now: now)
        guard appendModern(groupId, records, now: now) else {
            return .completeJoin(token, JoinGroupResult(error: .coordinatorNotAvailable, memberId: request.memberId))
        }
        if result.error == nil { s.modern[groupId] = group }
        return .completeJoin(token, result)
    }

    /// SyncGroup from a classic member of a consumer group: the assignment the coordinator computed.
    func classicSyncToModern(
        _ groupId: String, memberId: String, groupInstanceId: String?, generationId: Int32, protocolType: String?,
        protocolName: String?, in s: inout State, now: Int64
    ) -> SyncGroupResult {
        var group = s.modern[groupId]!
        let synced = group.classicSyncReceived(
            memberId: memberId, instanceId: groupInstanceId, generationId: generationId, protocolType: protocolType,
            protocolName: protocolName, now: now)
        s.modern[groupId] = group
        switch synced {
        case .failure(let error):
            return SyncGroupResult(error: error)
        case .success(let member):
            var result = SyncGroupResult()
            result.protocolType = protocolType
            result.protocolName = protocolName
            result.assignment = ConsumerProtocolBytes.encode(member.assigned, like: member.classic?.protocols.first?.metadata)
            return result
        }
    }

    func topicPartitionCounts() -> [String: Int32] {
        var topics: [String: Int32] = [:]
        for topic in storage.topics() { topics[topic.name] = topic.partitionCount }
        return topics
    }

    /// OffsetFetch v9+: a KIP-848 member must name its current epoch.
    func validateOffsetFetch(groupId: String, memberId: String?, memberEpoch: Int32) -> GroupError? {
        state.withLockedValue { s in
            s.modern[groupId]?.offsetFetchReceived(memberId: memberId, memberEpoch: memberEpoch)
        }
    }

    /// Appends a group's records in one batch; false (logged) when storage refuses.
    @discardableResult
    func appendModern(_ groupId: String, _ records: [ModernGroupRecord], now: Int64) -> Bool {
        guard !records.isEmpty else { return true }
        let encoded = records.map { ModernGroupRecordCodec.record(group: groupId, $0, topicId: topicId) }
        do {
            _ = try offsetsLog().append(RecordBatch.encode(records: encoded, baseTimestamp: now))
            return true
        } catch {
            logger.error("writing __consumer_offsets failed", metadata: ["error": "\(error)"])
            return false
        }
    }

    func topicId(_ name: String) -> KafkaUUID? { storage.topic(named: name)?.id }
}
