import OnceCore
import Testing

/// KIP-848's online migration against `ModernGroup` and `ConsumerGroup` alone: a classic group with
/// members becomes a consumer group, classic members are reconciled through JoinGroup/SyncGroup/
/// Heartbeat beside consumer-protocol members, and the group turns classic again, each rule as
/// Kafka 4.0's GroupMetadataManager applies it.
@Suite("KIP-848 migration between the classic and consumer protocols")
struct ModernGroupMigrationTests {
    static let topics: [String: Int32] = ["orders": 4]
    static let protocols = [GroupProtocol(name: "range", metadata: [0, 1, 2])]

    /// A stable classic group of `a` (orders 0, 1) and `b` (orders 2, 3) at generation 5.
    static func classicGroup(
        config: GroupConfig = GroupConfig(), protocolType: String = "consumer", sessionTimeoutMs: Int32 = 10_000
    ) -> ConsumerGroup {
        let members = [("a", [UInt8]([1])), ("b", [UInt8]([2]))].map { id, assignment in
            GroupMember(
                memberId: id, groupInstanceId: nil, clientId: "c", clientHost: "h", sessionTimeoutMs: sessionTimeoutMs,
                rebalanceTimeoutMs: 20_000, protocolType: protocolType, protocols: protocols, assignment: assignment,
                lastHeartbeatMs: 0)
        }
        return ConsumerGroup(groupId: "g", converting: members, generationId: 5, config: config, now: 0)
    }

    static let decoded: [String: (ModernGroup.ClassicSubscription, PartitionAssignment)] = [
        "a": (ModernGroup.ClassicSubscription(topics: ["orders"], rackId: "r1"), ["orders": [0, 1]]),
        "b": (ModernGroup.ClassicSubscription(topics: ["orders"]), ["orders": [2, 3]]),
    ]

    static func upgraded(config: GroupConfig = GroupConfig(), sessionTimeoutMs: Int32 = 10_000) -> ModernGroup {
        ModernGroup(upgrading: classicGroup(config: config, sessionTimeoutMs: sessionTimeoutMs), decoded: decoded, now: 1_000)
    }

    static func classicJoin(_ memberId: String, sessionTimeoutMs: Int32 = 10_000, protocolType: String = "consumer")
        -> ConsumerGroup.JoinRequest
    {
        ConsumerGroup.JoinRequest(
            memberId: memberId, clientId: "c", sessionTimeoutMs: sessionTimeoutMs, rebalanceTimeoutMs: 20_000,
            protocolType: protocolType, protocols: protocols, requireKnownMemberId: true, newMemberId: "fresh")
    }

    static func consumerJoin(_ memberId: String) -> ModernGroup.Heartbeat {
        ModernGroup.Heartbeat(
            memberId: memberId, memberEpoch: 0, rebalanceTimeoutMs: 30_000, subscribedTopicNames: ["orders"],
            ownedPartitions: [:])
    }

    /// The invariant the migration must keep: no partition has two owners at once.
    static func expectSingleOwners(_ group: ModernGroup, sourceLocation: SourceLocation = #_sourceLocation) {
        var owners: [String: String] = [:]
        for m in group.orderedMembers {
            for (topic, partitions) in m.owned {
                for p in partitions {
                    let key = "\(topic)-\(p)"
                    #expect(owners[key] == nil, "\(key) owned by \(owners[key] ?? "") and \(m.memberId)", sourceLocation: sourceLocation)
                    owners[key] = m.memberId
                }
            }
        }
    }

    @Test func upgradeNeedsThePolicyTheConsumerProtocolAndRoom() {
        #expect(ModernGroup.canUpgrade(Self.classicGroup(), config: GroupConfig()))
        for policy in [ConsumerGroupMigrationPolicy.disabled, .downgrade] {
            var config = GroupConfig()
            config.consumerMigrationPolicy = policy
            #expect(!ModernGroup.canUpgrade(Self.classicGroup(config: config), config: config), "\(policy)")
        }
        #expect(!ModernGroup.canUpgrade(Self.classicGroup(protocolType: "connect"), config: GroupConfig()))
        var small = GroupConfig()
        small.consumerMaxSize = 1
        #expect(!ModernGroup.canUpgrade(Self.classicGroup(config: small), config: small))
    }

    @Test func upgradedMembersKeepTheirPartitionsAtTheClassicGeneration() {
        let group = Self.upgraded()
        #expect(group.groupEpoch == 5 && group.assignmentEpoch == 5)
        #expect(group.state == .stable)
        let a = group.members["a"]!
        #expect(a.memberEpoch == 5 && a.previousMemberEpoch == 5 && a.assigned == ["orders": [0, 1]])
        #expect(a.rackId == "r1" && a.subscribedTopicNames == ["orders"])
        #expect(a.classic == ClassicMemberMetadata(sessionTimeoutMs: 10_000, protocols: Self.protocols))
        #expect(group.targetAssignment == ["a": ["orders": [0, 1]], "b": ["orders": [2, 3]]])
        // Replaying its records rebuilds the same group, classic metadata included.
        var replayed = ModernGroup(groupId: "g", now: 1_000)
        for record in group.records { replayed.replay(record, now: 1_000) }
        #expect(replayed.orderedMembers == group.orderedMembers)
        #expect(replayed.groupEpoch == 5 && replayed.targetAssignment == group.targetAssignment)
    }

    /// A consumer-protocol member joins: the classic members hear REBALANCE_IN_PROGRESS, rejoin,
    /// give up what moves, and only then does the newcomer get it.
    @Test func classicMembersRebalanceThroughJoinGroupBesideAConsumerMember() {
        var group = Self.upgraded()
        let (joined, _) = group.heartbeatReceived(Self.consumerJoin("c"), topics: Self.topics, now: 2_000)
        #expect(joined.error == nil && joined.memberEpoch == 6)
        #expect(joined.assignment == [:], "every partition is still held by a classic member")
        Self.expectSingleOwners(group)

        #expect(group.classicHeartbeatReceived(memberId: "a", instanceId: nil, generationId: 5, now: 2_100) == .rebalanceInProgress)
        #expect(group.classicHeartbeatReceived(memberId: "a", instanceId: nil, generationId: 4, now: 2_100) == .illegalGeneration)

        var epochs: [String: Int32] = [:]
        for id in ["a", "b"] {
            // Eager classic consumers rejoin owning nothing.
            let (result, records) = group.classicJoinReceived(
                Self.classicJoin(id), subscription: ModernGroup.ClassicSubscription(topics: ["orders"]), topics: Self.topics,
                now: 2_200)
            #expect(result.error == nil && result.memberId == id && result.leaderId == "" && result.members.isEmpty)
            #expect(result.protocolType == "consumer" && result.protocolName == "range")
            #expect(!records.isEmpty)
            epochs[id] = result.generationId
            Self.expectSingleOwners(group)
            let synced = group.classicSyncReceived(
                memberId: id, instanceId: nil, generationId: result.generationId, protocolType: "consumer",
                protocolName: "range", now: 2_300)
            guard case .success(let member) = synced else {
                Issue.record("sync of \(id): \(synced)")
                continue
            }
            #expect(member.assigned.values.map(\.count).reduce(0, +) >= 1)
        }
        #expect(epochs == ["a": 6, "b": 6])
        #expect(group.classicHeartbeatReceived(memberId: "a", instanceId: nil, generationId: 6, now: 2_400) == nil)

        let (settled, _) = group.heartbeatReceived(
            ModernGroup.Heartbeat(memberId: "c", memberEpoch: 6, ownedPartitions: [:]), topics: Self.topics, now: 2_500)
        #expect(settled.error == nil && settled.assignment.map { !$0.isEmpty } == true, "the released partitions")
        Self.expectSingleOwners(group)
        let owned = group.orderedMembers.reduce(into: 0) { $0 += $1.owned.values.map(\.count).reduce(0, +) }
        #expect(owned == 4)
    }

    @Test func classicRequestsAreCheckedAsKafkaChecksThem() {
        var group = Self.upgraded()
        _ = group.heartbeatReceived(Self.consumerJoin("c"), topics: Self.topics, now: 2_000)
        let sub = ModernGroup.ClassicSubscription(topics: ["orders"])
        #expect(group.classicJoinReceived(Self.classicJoin("", protocolType: "connect"), subscription: sub, topics: Self.topics, now: 2_000).result.error == .inconsistentGroupProtocol)
        let unknown = group.classicJoinReceived(Self.classicJoin(""), subscription: sub, topics: Self.topics, now: 2_000).result
        #expect(unknown.error == .memberIdRequired && unknown.memberId == "fresh")
        // A consumer-protocol member is no classic member.
        #expect(group.classicJoinReceived(Self.classicJoin("c"), subscription: sub, topics: Self.topics, now: 2_000).result.error == .unknownMemberId)
        #expect(group.classicHeartbeatReceived(memberId: "c", instanceId: nil, generationId: 6, now: 2_000) == .unknownMemberId)
        // A newcomer must share a protocol with the classic members already in the group.
        var join = Self.classicJoin("d")
        join.protocols = [GroupProtocol(name: "roundrobin", metadata: [])]
        #expect(group.classicJoinReceived(join, subscription: sub, topics: Self.topics, now: 2_000).result.error == .inconsistentGroupProtocol)

        let rejoined = group.classicJoinReceived(Self.classicJoin("a"), subscription: sub, topics: Self.topics, now: 2_000).result
        let wrongName = group.classicSyncReceived(
            memberId: "a", instanceId: nil, generationId: rejoined.generationId, protocolType: "consumer",
            protocolName: "roundrobin", now: 2_000)
        #expect(wrongName == .failure(.inconsistentGroupProtocol))
        let wrongGeneration = group.classicSyncReceived(
            memberId: "a", instanceId: nil, generationId: rejoined.generationId + 1, protocolType: nil, protocolName: nil,
            now: 2_000)
        #expect(wrongGeneration == .failure(.illegalGeneration))
        // Classic members commit with their generation; a wrong one is ILLEGAL_GENERATION, not STALE_MEMBER_EPOCH.
        #expect(group.offsetCommitReceived(memberId: "a", memberEpoch: rejoined.generationId, transactional: false, memberEpochAware: false) == nil)
        #expect(group.offsetCommitReceived(memberId: "a", memberEpoch: 1, transactional: false, memberEpochAware: false) == .illegalGeneration)
        #expect(group.offsetCommitReceived(memberId: "c", memberEpoch: 1, transactional: false, memberEpochAware: true) == .staleMemberEpoch)
    }

    @Test func aClassicMemberExpiresOnItsOwnSessionTimeout() {
        var config = GroupConfig()
        config.consumerSessionTimeoutMs = 45_000
        var group = Self.upgraded(config: config)
        #expect(group.expiredMembers(now: 1_000 + 9_999).isEmpty)
        #expect(group.expiredMembers(now: 1_000 + 10_000) == ["a", "b"])
        #expect(group.nextDeadlineMs == 11_000)
        let (left, _) = group.classicLeaveReceived(
            [ConsumerGroup.Leaving(memberId: "a"), ConsumerGroup.Leaving(memberId: "nobody"), ConsumerGroup.Leaving(memberId: "b")],
            now: 2_000)
        #expect(left == [nil, .unknownMemberId, nil])
        #expect(group.members.isEmpty && group.groupEpoch == 6, "one leave request, one epoch bump")
    }

    /// Kafka's join and sync timeouts: told to rejoin, a classic member that keeps heartbeating but
    /// never rejoins is fenced after its rebalance timeout, and so is one that joins and never syncs.
    @Test func aClassicMemberThatNeverRejoinsOrSyncsIsFenced() {
        // Sessions long enough not to be what ends these members.
        var group = Self.upgraded(sessionTimeoutMs: 600_000)
        _ = group.heartbeatReceived(Self.consumerJoin("c"), topics: Self.topics, now: 2_000)
        #expect(group.classicHeartbeatReceived(memberId: "a", instanceId: nil, generationId: 5, now: 3_000) == .rebalanceInProgress)
        #expect(group.classicHeartbeatReceived(memberId: "a", instanceId: nil, generationId: 5, now: 9_000) == .rebalanceInProgress)
        #expect(group.expiredMembers(now: 3_000 + 19_999).isEmpty, "the first request to rejoin starts the clock")
        #expect(group.expiredMembers(now: 3_000 + 20_000).contains("a"))

        let sub = ModernGroup.ClassicSubscription(topics: ["orders"])
        let joined = group.classicJoinReceived(
            Self.classicJoin("b", sessionTimeoutMs: 600_000), subscription: sub, topics: Self.topics, now: 4_000).result
        #expect(joined.error == nil)
        #expect(group.expiredMembers(now: 4_000 + 20_000).contains("b"), "joined but never synced")
        _ = group.classicSyncReceived(
            memberId: "b", instanceId: nil, generationId: joined.generationId, protocolType: nil, protocolName: nil, now: 5_000)
        #expect(!group.expiredMembers(now: 4_000 + 20_000).contains("b"))
    }

    /// A classic member that starts heartbeating with ConsumerGroupHeartbeat (an upgraded client
    /// keeping its member id) is a consumer-protocol member from then on.
    @Test func aHeartbeatMakesAClassicMemberAConsumerMember() {
        var group = Self.upgraded()
        let (result, _) = group.heartbeatReceived(
            ModernGroup.Heartbeat(memberId: "a", memberEpoch: 5, ownedPartitions: ["orders": [0, 1]]), topics: Self.topics,
            now: 2_000)
        #expect(result.error == nil)
        #expect(group.members["a"]?.classic == nil)
        #expect(group.classicHeartbeatReceived(memberId: "a", instanceId: nil, generationId: 5, now: 2_000) == .unknownMemberId)
        #expect(group.downgradesOnRemoving(["a"]), "b, the only one left, is classic")
        #expect(!group.downgradesOnRemoving(["b"]))
    }

    @Test func theLastConsumerMemberLeavingDowngradesWhenThePolicyAllows() {
        var group = Self.upgraded()
        _ = group.heartbeatReceived(Self.consumerJoin("c"), topics: Self.topics, now: 2_000)
        #expect(group.downgradesOnRemoving(["c"]))
        #expect(!group.downgradesOnRemoving(["a"]), "a consumer-protocol member remains")
        #expect(!group.downgradesOnRemoving(["a", "b", "c"]), "nobody remains")
        var upgradeOnly = GroupConfig()
        upgradeOnly.consumerMigrationPolicy = .upgrade
        var kept = Self.upgraded(config: upgradeOnly)
        _ = kept.heartbeatReceived(Self.consumerJoin("c"), topics: Self.topics, now: 2_000)
        #expect(!kept.downgradesOnRemoving(["c"]))

        let (classic, actions) = group.downgraded(
            removing: ["c"], encode: { m, a in [UInt8(m.memberId.utf8.first!), UInt8(a.values.map(\.count).reduce(0, +))] },
            now: 3_000)
        #expect(classic.generationId == group.groupEpoch)
        #expect(classic.protocolType == "consumer" && classic.protocolName == "range")
        #expect(classic.state == .preparingRebalance, "the members rejoin as a classic group")
        #expect(classic.orderedMembers.map(\.memberId) == ["a", "b"])
        #expect(classic.members["a"]!.sessionTimeoutMs == 10_000 && classic.members["a"]!.protocols == Self.protocols)
        guard case .persistGroup(let snapshot) = actions.first else {
            Issue.record("the classic group is written first: \(actions)")
            return
        }
        // The written group carries each member's target assignment, encoded as it subscribed.
        let targets = group.targetAssignment
        #expect(snapshot.members.map(\.assignment) == ["a", "b"].map { id in
            [UInt8(id.utf8.first!), UInt8(targets[id]!.values.map(\.count).reduce(0, +))]
        })
        #expect(snapshot.generationId == group.groupEpoch)
    }
}
