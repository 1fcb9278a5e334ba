import OnceCore
import Testing

/// Scripts KIP-848 sessions against `ModernGroup`: members join, leave and come back by heartbeats
/// alone, with a hand-driven clock and topics passed in as the broker would.
@Suite("KIP-848 consumer group state machine")
struct ModernGroupTests {
    static let topics: [String: Int32] = ["orders": 6, "audit": 2]

    struct Session {
        var group = ModernGroup(groupId: "g", config: GroupConfig(), now: 0)
        var now: Int64 = 0
        var topics = ModernGroupTests.topics
        var records: [ModernGroupRecord] = []

        mutating func beat(_ hb: ModernGroup.Heartbeat) -> ModernGroup.HeartbeatResult {
            let (result, records) = group.heartbeatReceived(hb, topics: topics, now: now)
            self.records += records
            return result
        }

        /// A member's first heartbeat.
        mutating func join(_ id: String, topics: [String] = ["orders"], instance: String? = nil, assignor: String? = nil)
            -> ModernGroup.HeartbeatResult
        {
            beat(ModernGroup.Heartbeat(
                memberId: id, memberEpoch: 0, instanceId: instance, rebalanceTimeoutMs: 30_000,
                subscribedTopicNames: topics, serverAssignor: assignor, ownedPartitions: [:]))
        }

        /// A steady heartbeat reporting what the member owns now.
        mutating func beat(_ id: String, epoch: Int32, owned: PartitionAssignment, instance: String? = nil)
            -> ModernGroup.HeartbeatResult
        {
            beat(ModernGroup.Heartbeat(memberId: id, memberEpoch: epoch, instanceId: instance, ownedPartitions: owned))
        }
    }

    /// Heartbeats every member, each owning what it was last told, until none changes; returns
    /// each member's (epoch, assignment).
    static func settle(_ s: inout Session, _ members: [String: (epoch: Int32, owned: PartitionAssignment)])
        -> [String: (epoch: Int32, owned: PartitionAssignment)]
    {
        var state = members
        for _ in 0..<10 {
            var changed = false
            for id in state.keys.sorted() {
                let r = s.beat(id, epoch: state[id]!.epoch, owned: state[id]!.owned)
                #expect(r.error == nil, "\(id): \(String(describing: r.error)) \(r.errorMessage ?? "")")
                let owned = r.assignment ?? state[id]!.owned
                if r.memberEpoch != state[id]!.epoch || owned != state[id]!.owned { changed = true }
                state[id] = (r.memberEpoch, owned)
            }
            if !changed { break }
        }
        return state
    }

    /// librdkafka's 0045 burst as Kafka answers it: a new subscription while the member owns
    /// partitions revokes first at the old epoch, the leave (-1) removes the member, the old
    /// incarnation's late heartbeat is unknown, and the rejoin (0) with the same member id is a new
    /// member at a later epoch that gets its whole assignment. The subscription change, the leave
    /// and the rejoin all write records, which is what makes their answers wait for the linger.
    @Test func subscriptionBurstThenLeaveAndRejoinWithTheSameMemberId() {
        var s = Session()
        s.topics = ["a": 2, "b": 2, "c": 2]
        let joined = s.join("m", topics: ["a", "b"])
        #expect(joined.memberEpoch == 1 && joined.assignment == ["a": [0, 1], "b": [0, 1]])
        #expect(s.beat("m", epoch: 1, owned: ["a": [0, 1], "b": [0, 1]]).error == nil)

        s.records = []
        let moved = s.beat(ModernGroup.Heartbeat(memberId: "m", memberEpoch: 1, subscribedTopicNames: ["b", "c"]))
        #expect(moved.error == nil)
        #expect(moved.memberEpoch == 1, "revoking keeps the epoch")
        #expect(moved.assignment == ["b": [0, 1]], "c waits until a is given up")
        #expect(!s.records.isEmpty)

        s.records = []
        let left = s.beat(ModernGroup.Heartbeat(memberId: "m", memberEpoch: ModernGroup.leaveEpoch))
        #expect(left.error == nil && left.memberEpoch == ModernGroup.leaveEpoch)
        #expect(s.group.isEmpty && !s.records.isEmpty)
        #expect(s.beat("m", epoch: 1, owned: ["b": [0, 1]]).error == .unknownMemberId)

        s.records = []
        let back = s.join("m", topics: ["c"])
        #expect(back.error == nil)
        #expect(back.memberEpoch > moved.memberEpoch)
        #expect(back.assignment == ["c": [0, 1]])
        #expect(!s.records.isEmpty)
        #expect(s.beat("m", epoch: 1, owned: [:]).error == .fencedMemberEpoch, "the old incarnation's epoch is fenced")
    }

    @Test func firstMemberGetsEveryPartitionAtTheFirstEpoch() {
        var s = Session()
        let r = s.join("a")
        #expect(r.error == nil)
        #expect(r.memberEpoch == 1)
        #expect(r.assignment == ["orders": Set(0..<6)])
        #expect(r.heartbeatIntervalMs == GroupConfig().consumerHeartbeatIntervalMs)
        #expect(s.group.state == .stable)
        #expect(s.records.contains(.groupEpoch(1)))
        #expect(s.records.contains(.targetEpoch(1)))
    }

    @Test func aPartitionIsRevokedBeforeAnotherMemberGetsIt() {
        var s = Session()
        _ = s.join("a")
        let b = s.join("b")
        // b's target is half the partitions, but a still owns them: b waits at the new epoch.
        #expect(b.memberEpoch == 2)
        #expect(b.assignment == [:])
        #expect(s.group.state == .reconciling)

        // a is asked to give up three partitions and stays at its epoch until it reports them gone.
        let a1 = s.beat("a", epoch: 1, owned: ["orders": Set(0..<6)])
        #expect(a1.memberEpoch == 1)
        let kept = a1.assignment!["orders"]!
        #expect(kept.count == 3)
        let again = s.beat("a", epoch: 1, owned: ["orders": Set(0..<6)])
        #expect(again.memberEpoch == 1, "still owning revoked partitions keeps the old epoch")

        // b still cannot take them.
        let b1 = s.beat("b", epoch: 2, owned: [:])
        #expect(b1.assignment == nil || b1.assignment == [:])

        let a2 = s.beat("a", epoch: 1, owned: ["orders": kept])
        #expect(a2.memberEpoch == 2)
        let b2 = s.beat("b", epoch: 2, owned: [:])
        #expect(b2.assignment == ["orders": Set(0..<6).subtracting(kept)])
        #expect(s.group.state == .stable)
    }

    @Test func everyPartitionHasExactlyOneOwnerThroughJoinsAndLeaves() {
        var s = Session()
        var members: [String: (epoch: Int32, owned: PartitionAssignment)] = [:]
        for id in ["a", "b", "c"] {
            let r = s.join(id)
            members[id] = (r.memberEpoch, r.assignment ?? [:])
            members = Self.settle(&s, members)
            Self.expectExclusive(members.values.map(\.owned), covering: 6)
        }
        #expect(members.values.map { $0.owned.partitionCount }.sorted() == [2, 2, 2])
        let left = s.beat(ModernGroup.Heartbeat(memberId: "b", memberEpoch: ModernGroup.leaveEpoch))
        #expect(left.memberEpoch == ModernGroup.leaveEpoch)
        members["b"] = nil
        members = Self.settle(&s, members)
        Self.expectExclusive(members.values.map(\.owned), covering: 6)
        #expect(members.values.map { $0.owned.partitionCount }.sorted() == [3, 3])
    }

    static func expectExclusive(_ assignments: [PartitionAssignment], covering count: Int) {
        let all = assignments.flatMap(\.sortedPartitions)
        #expect(all.count == Set(all).count, "a partition has two owners: \(assignments)")
        #expect(Set(all).count == count, "not every partition is owned: \(assignments)")
    }

    @Test func staleAndAheadEpochsAreFenced() {
        var s = Session()
        _ = s.join("a")
        #expect(s.beat("a", epoch: 7, owned: [:]).error == .fencedMemberEpoch)
        _ = s.join("b")
        _ = Self.settle(&s, ["a": (1, ["orders": Set(0..<6)]), "b": (2, [:])])
        // a is at epoch 2 now; epoch 1 with partitions it no longer holds is a zombie.
        #expect(s.beat("a", epoch: 1, owned: ["orders": Set(0..<6)]).error == .fencedMemberEpoch)
        #expect(s.beat("zombie", epoch: 3, owned: [:]).error == .unknownMemberId)
    }

    @Test func aLostAnswerIsForgivenWhenTheMemberOwnsASubset() {
        var s = Session()
        _ = s.join("a")
        _ = s.join("b")
        let a1 = s.beat("a", epoch: 1, owned: ["orders": Set(0..<6)])
        let kept = a1.assignment!
        let a2 = s.beat("a", epoch: 1, owned: kept)
        #expect(a2.memberEpoch == 2)
        // The answer carrying epoch 2 was lost; the member retries with epoch 1 and its kept partitions.
        let retry = s.beat("a", epoch: 1, owned: kept)
        #expect(retry.error == nil)
        #expect(retry.memberEpoch == 2)
    }

    @Test func requestsAreValidatedAsKafkaDoes() {
        var s = Session()
        #expect(s.beat(ModernGroup.Heartbeat(memberId: "a", memberEpoch: 0, subscribedTopicNames: ["orders"], ownedPartitions: [:])).error == .invalidRequest)
        #expect(s.beat(ModernGroup.Heartbeat(memberId: "", memberEpoch: 0, rebalanceTimeoutMs: 1, subscribedTopicNames: ["orders"], ownedPartitions: [:])).error == .invalidRequest)
        #expect(s.beat(ModernGroup.Heartbeat(memberId: "a", memberEpoch: 0, rebalanceTimeoutMs: 1, subscribedTopicNames: [], ownedPartitions: [:])).error == .invalidRequest)
        #expect(s.beat(ModernGroup.Heartbeat(memberId: "a", memberEpoch: -3)).error == .invalidRequest)
        #expect(s.join("a", assignor: "sticky").error == .unsupportedAssignor)
        #expect(s.beat(ModernGroup.Heartbeat(memberId: "a", memberEpoch: 0, rebalanceTimeoutMs: 1, subscribedTopicRegex: "(", ownedPartitions: [:])).error == .invalidRegularExpression)
        #expect(s.group.members.isEmpty, "a rejected heartbeat adds nobody")
        // v0: the coordinator names the member.
        let v0 = s.beat(ModernGroup.Heartbeat(memberId: "", memberEpoch: 0, rebalanceTimeoutMs: 1, subscribedTopicNames: ["orders"], ownedPartitions: [:], clientGeneratesMemberId: false, newMemberId: "made-up"))
        #expect(v0.memberId == "made-up")
    }

    @Test func aStaticMemberReturnsToItsPartitionsWithoutARebalance() {
        var s = Session()
        _ = s.join("a1", instance: "alpha")
        _ = s.join("b", instance: nil)
        var members = Self.settle(&s, ["a1": (1, ["orders": Set(0..<6)]), "b": (2, [:])])
        let before = s.group.groupEpoch
        let alphaOwned = members["a1"]!.owned

        // A second process claiming the instance while the first is alive is refused.
        #expect(s.join("a2", instance: "alpha").error == .unreleasedInstanceId)
        let parked = s.beat(ModernGroup.Heartbeat(memberId: "a1", memberEpoch: ModernGroup.leaveStaticEpoch, instanceId: "alpha"))
        #expect(parked.memberEpoch == ModernGroup.leaveStaticEpoch)
        // Its partitions stay reserved for it: b gets none of them.
        members["b"] = (s.beat("b", epoch: members["b"]!.epoch, owned: members["b"]!.owned).memberEpoch, members["b"]!.owned)

        let back = s.join("a2", instance: "alpha")
        #expect(back.error == nil)
        #expect(back.assignment == alphaOwned)
        #expect(s.group.groupEpoch == before, "a static member's return bumps no epoch")
        #expect(s.group.members["a1"] == nil)
        // The old incarnation is fenced.
        #expect(s.beat("a1", epoch: 2, owned: [:], instance: "alpha").error == .fencedInstanceId)
    }

    @Test func sessionsExpireAndSlowRevocationsAreFenced() {
        var s = Session()
        _ = s.join("a")
        _ = s.join("b")
        _ = s.beat("a", epoch: 1, owned: ["orders": Set(0..<6)])
        #expect(s.group.members["a"]?.state == .unrevokedPartitions)
        // a never revokes; b keeps heartbeating. After a's rebalance timeout (30 s), a is out.
        s.now = 29_000
        _ = s.beat("b", epoch: 2, owned: [:])
        #expect(s.group.tick(now: 29_000).isEmpty)
        s.now = 30_001
        _ = s.beat("b", epoch: 2, owned: [:])
        let records = s.group.tick(now: 30_001)
        #expect(records.contains(.member("a", nil)))
        #expect(s.group.members.keys.sorted() == ["b"])

        // b's session lapses without heartbeats.
        let deadline = s.group.nextDeadlineMs!
        #expect(s.group.tick(now: deadline - 1).isEmpty)
        _ = s.group.tick(now: deadline)
        #expect(s.group.isEmpty)
        #expect(s.group.state == .empty)
    }

    @Test func newPartitionsAndRegexMatchesAreAssigned() {
        var s = Session()
        let first = s.beat(ModernGroup.Heartbeat(
            memberId: "a", memberEpoch: 0, rebalanceTimeoutMs: 1_000, subscribedTopicNames: ["audit"],
            subscribedTopicRegex: "or.*", ownedPartitions: [:]))
        // As in Kafka 4.x the regex is resolved after the heartbeat: literal topics come first.
        #expect(first.assignment == ["audit": [0, 1]])
        #expect(s.group.regexRefreshDue(now: s.now))
        let refreshed = s.group.refreshRegexes(topics: s.topics, now: s.now)
        #expect(refreshed.contains(.groupEpoch(first.memberEpoch + 1)))
        #expect(!s.group.regexRefreshDue(now: s.now))
        let matched = s.beat("a", epoch: first.memberEpoch, owned: first.assignment!)
        #expect(matched.assignment == ["audit": [0, 1], "orders": Set(0..<6)])

        // A partition added to a subscribed topic shows at the next heartbeat; a topic created
        // later joins at the next regex refresh; internal topics never match.
        s.topics["orders"] = 8
        s.topics["ordinals"] = 1
        s.topics["__consumer_offsets"] = 1
        let grown = s.beat("a", epoch: matched.memberEpoch, owned: matched.assignment!)
        #expect(grown.memberEpoch == matched.memberEpoch + 1)
        #expect(grown.assignment == ["audit": [0, 1], "orders": Set(0..<8)])
        s.now += ModernGroup.regexRefreshIntervalMs
        #expect(s.group.regexRefreshDue(now: s.now))
        _ = s.group.refreshRegexes(topics: s.topics, now: s.now)
        let later = s.beat("a", epoch: grown.memberEpoch, owned: grown.assignment!)
        #expect(later.assignment == ["audit": [0, 1], "orders": Set(0..<8), "ordinals": [0]])

        // Leaving drops the regex: a member subscribing to it again waits for a fresh resolution.
        _ = s.beat(ModernGroup.Heartbeat(memberId: "a", memberEpoch: ModernGroup.leaveEpoch))
        #expect(s.group.resolvedRegexes.isEmpty)
        let again = s.beat(ModernGroup.Heartbeat(
            memberId: "b", memberEpoch: 0, rebalanceTimeoutMs: 1_000, subscribedTopicNames: ["audit"],
            subscribedTopicRegex: "or.*", ownedPartitions: [:]))
        #expect(again.assignment == ["audit": [0, 1]])
    }

    @Test func offsetCommitsCheckTheMemberEpoch() {
        var s = Session()
        #expect(s.group.offsetCommitReceived(memberId: "", memberEpoch: -1, transactional: false, memberEpochAware: true) == nil)
        let a = s.join("a")
        #expect(s.group.offsetCommitReceived(memberId: "a", memberEpoch: a.memberEpoch, transactional: false, memberEpochAware: true) == nil)
        #expect(s.group.offsetCommitReceived(memberId: "a", memberEpoch: a.memberEpoch - 1, transactional: false, memberEpochAware: true) == .staleMemberEpoch)
        #expect(s.group.offsetCommitReceived(memberId: "a", memberEpoch: a.memberEpoch, transactional: false, memberEpochAware: false) == .unsupportedVersion)
        #expect(s.group.offsetCommitReceived(memberId: "x", memberEpoch: 1, transactional: true, memberEpochAware: true) == .unknownMemberId)
        #expect(s.group.offsetCommitReceived(memberId: "", memberEpoch: -1, transactional: false, memberEpochAware: true) == .unknownMemberId)
        #expect(s.group.offsetCommitReceived(memberId: "", memberEpoch: -1, transactional: true, memberEpochAware: true) == nil)
        #expect(
            s.group.offsetCommitReceived(memberId: "a", memberEpoch: a.memberEpoch - 1, transactional: true, memberEpochAware: true)
                == .illegalGeneration, "TxnOffsetCommit has no STALE_MEMBER_EPOCH (KIP-447)")
        #expect(s.group.offsetFetchReceived(memberId: nil, memberEpoch: -1) == nil)
        #expect(s.group.offsetFetchReceived(memberId: "a", memberEpoch: a.memberEpoch + 1) == .staleMemberEpoch)
    }

    @Test func replayingTheRecordsRebuildsTheGroup() {
        var s = Session()
        _ = s.join("a", instance: "alpha")
        _ = s.join("b")
        _ = Self.settle(&s, ["a": (1, ["orders": Set(0..<6)]), "b": (2, [:])])
        _ = s.beat(ModernGroup.Heartbeat(memberId: "c", memberEpoch: 0, rebalanceTimeoutMs: 5, subscribedTopicNames: ["audit"], ownedPartitions: [:]))
        _ = s.beat(ModernGroup.Heartbeat(memberId: "c", memberEpoch: ModernGroup.leaveEpoch))

        var rebuilt = ModernGroup(groupId: "g", now: 99)
        for r in s.records { rebuilt.replay(r, now: 99) }
        #expect(rebuilt.groupEpoch == s.group.groupEpoch)
        #expect(rebuilt.assignmentEpoch == s.group.assignmentEpoch)
        #expect(rebuilt.targetAssignment == s.group.targetAssignment)
        #expect(rebuilt.members.keys.sorted() == ["a", "b"])
        for (id, m) in s.group.members {
            #expect(rebuilt.members[id]?.assigned == m.assigned)
            #expect(rebuilt.members[id]?.memberEpoch == m.memberEpoch)
            #expect(rebuilt.members[id]?.instanceId == m.instanceId)
        }
        // The snapshot form rebuilds the same group.
        var fromSnapshot = ModernGroup(groupId: "g", now: 99)
        for r in s.group.records { fromSnapshot.replay(r, now: 99) }
        #expect(fromSnapshot.members.mapValues(\.assigned) == s.group.members.mapValues(\.assigned))
    }
}

@Suite("KIP-848 server assignors")
struct ServerAssignorTests {
    static func members(_ ids: [String], topics: Set<String>) -> [ServerAssignor.Member] {
        ids.map { ServerAssignor.Member(memberId: $0, topics: topics) }
    }

    @Test(arguments: ServerAssignor.allCases)
    func everyPartitionGoesToExactlyOneSubscriber(_ assignor: ServerAssignor) {
        let counts: [String: Int32] = ["a": 7, "b": 3]
        let result = assignor.assign(Self.members(["m1", "m2", "m3"], topics: ["a", "b"]), partitionCounts: counts)
        let all = result.values.flatMap(\.sortedPartitions)
        #expect(all.count == 10)
        #expect(Set(all).count == 10)
    }

    @Test func uniformBalancesAndSticks() {
        let counts: [String: Int32] = ["a": 7, "b": 3]
        let first = ServerAssignor.uniform.assign(Self.members(["m1", "m2"], topics: ["a", "b"]), partitionCounts: counts)
        #expect(first.values.map(\.partitionCount).sorted() == [5, 5])
        // A third member joins: only what it needs moves to it.
        var members = Self.members(["m1", "m2"], topics: ["a", "b"]).map { m in
            var m = m
            m.current = first[m.memberId]!
            return m
        }
        members.append(ServerAssignor.Member(memberId: "m3", topics: ["a", "b"]))
        let second = ServerAssignor.uniform.assign(members, partitionCounts: counts)
        #expect(second.values.map(\.partitionCount).sorted() == [3, 3, 4])
        for id in ["m1", "m2"] { #expect(first[id]!.contains(second[id]!), "\(id) lost partitions it kept") }
    }

    @Test func uniformRespectsDifferentSubscriptions() {
        let counts: [String: Int32] = ["a": 4, "b": 4]
        let result = ServerAssignor.uniform.assign(
            [ServerAssignor.Member(memberId: "m1", topics: ["a"]), ServerAssignor.Member(memberId: "m2", topics: ["a", "b"])],
            partitionCounts: counts)
        #expect(result["m1"]!.keys.sorted() == ["a"])
        #expect(result["m2"]!["b"] == Set(0..<4))
        #expect(result.values.map(\.partitionCount).sorted() == [4, 4])
    }

    @Test func rangeGivesConsecutivePartitionsAndTheSameNumbersAcrossTopics() {
        let counts: [String: Int32] = ["a": 5, "b": 5]
        let result = ServerAssignor.range.assign(Self.members(["m2", "m1"], topics: ["a", "b"]), partitionCounts: counts)
        #expect(result["m1"] == ["a": [0, 1, 2], "b": [0, 1, 2]])
        #expect(result["m2"] == ["a": [3, 4], "b": [3, 4]])
    }
}
