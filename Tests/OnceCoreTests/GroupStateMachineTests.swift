import OnceCore
import Testing

/// Scripts whole sessions of the classic group protocol against `ConsumerGroup`, with a hand-driven clock.
@Suite("Consumer group state machine")
struct GroupStateMachineTests {
    static let config: GroupConfig = {
        var c = GroupConfig()
        c.initialRebalanceDelayMs = 3_000
        c.offsetsRetentionMs = 60_000
        return c
    }()

    /// A group plus the bookkeeping a driver would do: tokens for parked requests and their answers.
    struct Session {
        var group = ConsumerGroup(groupId: "g", config: GroupStateMachineTests.config, now: 0)
        var now: Int64 = 0
        var nextToken = 0
        var joins: [RequestToken: JoinGroupResult] = [:]
        var syncs: [RequestToken: SyncGroupResult] = [:]
        var persisted: [GroupSnapshot] = []

        mutating func record(_ actions: [GroupAction]) {
            for action in actions {
                switch action {
                case .completeJoin(let token, let result): joins[token] = result
                case .completeSync(let token, let result): syncs[token] = result
                case .persistGroup(let snapshot): persisted.append(snapshot)
                }
            }
        }

        /// Sends JoinGroup; returns its token (answered or parked).
        mutating func join(
            _ memberId: String, instance: String? = nil, newId: String = "fresh", protocols: [String] = ["range"],
            session: Int32 = 10_000, rebalance: Int32 = 20_000, requireKnown: Bool = true
        ) -> RequestToken {
            let token = nextToken
            nextToken += 1
            let request = ConsumerGroup.JoinRequest(
                memberId: memberId, groupInstanceId: instance, clientId: "client", sessionTimeoutMs: session,
                rebalanceTimeoutMs: rebalance, protocolType: "consumer",
                protocols: protocols.map { GroupProtocol(name: $0, metadata: Array("\(memberId)-\($0)".utf8)) },
                requireKnownMemberId: requireKnown, newMemberId: newId)
            record(group.joinReceived(request, token: token, now: now))
            return token
        }

        /// Joins a new dynamic member through KIP-394's two steps; returns the parked second join.
        mutating func joinNew(_ id: String, protocols: [String] = ["range"], session: Int32 = 10_000, rebalance: Int32 = 20_000) -> RequestToken {
            let first = join("", newId: id, protocols: protocols, session: session, rebalance: rebalance)
            precondition(joins[first]?.error == .memberIdRequired && joins[first]?.memberId == id)
            return join(id, protocols: protocols, session: session, rebalance: rebalance)
        }

        mutating func sync(_ memberId: String, generation: Int32, assignments: [String: [UInt8]] = [:], instance: String? = nil) -> RequestToken {
            let token = nextToken
            nextToken += 1
            record(
                group.syncReceived(
                    memberId: memberId, groupInstanceId: instance, generationId: generation, protocolType: "consumer",
                    protocolName: nil, assignments: assignments, token: token, now: now))
            return token
        }

        mutating func heartbeat(_ memberId: String, generation: Int32, instance: String? = nil) -> GroupError? {
            group.heartbeatReceived(memberId: memberId, groupInstanceId: instance, generationId: generation, now: now)
        }

        mutating func commit(_ memberId: String, generation: Int32) -> GroupError? {
            group.offsetCommitReceived(memberId: memberId, groupInstanceId: nil, generationId: generation, now: now)
        }

        mutating func advance(to time: Int64) {
            now = time
            record(group.tick(now: now))
        }

        /// One member joined, synced and stable in generation 1.
        static func stableWithOne(_ id: String = "a") -> Session {
            var s = Session()
            let join = s.joinNew(id)
            s.advance(to: 3_000)
            precondition(s.joins[join]?.generationId == 1)
            let sync = s.sync(id, generation: 1, assignments: [id: [1]])
            precondition(s.syncs[sync]?.assignment == [1])
            return s
        }
    }

    @Test("a first join from v4 gets MEMBER_ID_REQUIRED, and the rejoin completes after the initial delay")
    func memberIdRequiredAndInitialDelay() throws {
        var s = Session()
        let first = s.join("", newId: "a-1")
        #expect(s.joins[first] == JoinGroupResult(error: .memberIdRequired, memberId: "a-1"))
        #expect(s.group.state == .empty)
        #expect(s.group.pendingMembers["a-1"] == 10_000)

        let second = s.join("a-1")
        #expect(s.joins[second] == nil, "parked until the initial delay passes")
        #expect(s.group.state == .preparingRebalance)
        s.advance(to: 2_999)
        #expect(s.joins[second] == nil)
        s.advance(to: 3_000)
        let result = try #require(s.joins[second])
        #expect(result.error == nil)
        #expect(result.generationId == 1)
        #expect(result.leaderId == "a-1")
        #expect(result.protocolName == "range")
        #expect(result.members.map(\.memberId) == ["a-1"])
        #expect(result.members.first?.metadata == Array("a-1-range".utf8))
        #expect(s.group.state == .completingRebalance)
    }

    @Test("a join from v0-v3 is admitted at once under a fresh member id")
    func oldJoinGetsIdDirectly() throws {
        var s = Session()
        let token = s.join("", newId: "old-1", requireKnown: false)
        s.advance(to: 3_000)
        #expect(s.joins[token]?.memberId == "old-1")
        #expect(s.joins[token]?.generationId == 1)
    }

    @Test("the leader's SyncGroup hands every member its assignment and makes the group Stable")
    func syncDistributesAssignments() throws {
        var s = Session()
        let a = s.joinNew("a")
        let b = s.joinNew("b")
        s.advance(to: 3_000)
        #expect(s.joins[a]?.members.map(\.memberId) == ["a", "b"], "the leader sees every member")
        #expect(s.joins[b]?.members == [], "followers do not")
        #expect(s.joins[b]?.leaderId == "a")

        let followerSync = s.sync("b", generation: 1)
        #expect(s.syncs[followerSync] == nil, "parked until the leader syncs")
        let leaderSync = s.sync("a", generation: 1, assignments: ["a": [1], "b": [2]])
        #expect(s.syncs[leaderSync]?.assignment == [1])
        #expect(s.syncs[followerSync]?.assignment == [2])
        #expect(s.group.state == .stable)
        #expect(s.persisted.last?.members.map(\.assignment) == [[1], [2]])
        #expect(s.persisted.last?.generationId == 1)

        // A late SyncGroup in Stable gets the same assignment again.
        let again = s.sync("b", generation: 1)
        #expect(s.syncs[again]?.assignment == [2])
    }

    @Test("SyncGroup refuses stale generations, unknown members and syncs during PreparingRebalance")
    func syncErrors() throws {
        var s = Session.stableWithOne()
        #expect(s.syncs[s.sync("a", generation: 0)]?.error == .illegalGeneration)
        #expect(s.syncs[s.sync("zz", generation: 1)]?.error == .unknownMemberId)
        _ = s.joinNew("b")
        #expect(s.group.state == .preparingRebalance)
        #expect(s.syncs[s.sync("a", generation: 1)]?.error == .rebalanceInProgress)
    }

    @Test("a new member triggers a rebalance; the old member learns it from its heartbeat and rejoins")
    func rebalanceOnNewMember() throws {
        var s = Session.stableWithOne()
        #expect(s.heartbeat("a", generation: 1) == nil)
        let b = s.joinNew("b")
        #expect(s.group.state == .preparingRebalance)
        #expect(s.heartbeat("a", generation: 1) == .rebalanceInProgress)
        #expect(s.joins[b] == nil)
        let a = s.join("a")
        #expect(s.joins[a]?.generationId == 2, "everyone rejoined: no need to wait")
        #expect(s.joins[b]?.generationId == 2)
        #expect(s.group.state == .completingRebalance)
        #expect(s.heartbeat("a", generation: 2) == nil, "heartbeats are fine between join and sync")
        #expect(s.heartbeat("a", generation: 1) == .illegalGeneration)
        #expect(s.heartbeat("nobody", generation: 2) == .unknownMemberId)
    }

    @Test("the protocol chosen is the one most members prefer among those all support")
    func protocolSelection() throws {
        var s = Session()
        let a = s.joinNew("a", protocols: ["roundrobin", "range"])
        _ = s.joinNew("b", protocols: ["range", "roundrobin", "sticky"])
        _ = s.joinNew("c", protocols: ["range", "roundrobin"])
        s.advance(to: 3_000)
        #expect(s.joins[a]?.protocolName == "range")
        #expect(s.joins[a]?.members.map(\.metadata) == [Array("a-range".utf8), Array("b-range".utf8), Array("c-range".utf8)])

        let d = s.join("", newId: "d", protocols: ["sticky"])
        #expect(s.joins[d]?.error == .inconsistentGroupProtocol)
        let e = s.join("", newId: "e", session: 1_000)
        #expect(s.joins[e]?.error == .invalidSessionTimeout)
    }

    @Test("a member whose session expires is removed and the others rebalance without it")
    func sessionExpiry() throws {
        var s = Session()
        let a = s.joinNew("a", session: 10_000)
        let b = s.joinNew("b", session: 6_000)
        s.advance(to: 3_000)
        _ = s.sync("b", generation: 1)
        _ = s.sync("a", generation: 1, assignments: ["a": [1], "b": [2]])
        #expect(s.joins[a]?.generationId == 1 && s.joins[b]?.generationId == 1)

        s.advance(to: 8_000)
        #expect(s.heartbeat("a", generation: 1) == nil)
        s.advance(to: 8_999)
        #expect(s.group.members["b"] != nil, "b's session runs until 3000 + 6000")
        s.advance(to: 9_000)
        #expect(s.group.members["b"] == nil)
        #expect(s.group.state == .preparingRebalance)
        #expect(s.heartbeat("a", generation: 1) == .rebalanceInProgress)
        let rejoin = s.join("a")
        #expect(s.joins[rejoin]?.generationId == 2)
        #expect(s.joins[rejoin]?.members.map(\.memberId) == ["a"])
    }

    @Test("a member that does not rejoin within the rebalance timeout is dropped from the generation")
    func rebalanceTimeout() throws {
        var s = Session()
        _ = s.joinNew("a", session: 30_000, rebalance: 10_000)
        _ = s.joinNew("b", session: 30_000, rebalance: 10_000)
        s.advance(to: 3_000)
        _ = s.sync("b", generation: 1)
        _ = s.sync("a", generation: 1, assignments: [:])
        s.advance(to: 4_000)
        let c = s.joinNew("c", session: 30_000, rebalance: 10_000)
        let a = s.join("a", session: 30_000, rebalance: 10_000)
        #expect(s.joins[a] == nil, "b has not rejoined yet")
        // b keeps heartbeating, so its session never lapses, but it never rejoins either.
        s.advance(to: 10_000)
        #expect(s.heartbeat("b", generation: 1) == .rebalanceInProgress)
        s.advance(to: 13_999)
        #expect(s.joins[a] == nil)
        s.advance(to: 14_000)
        #expect(s.joins[a]?.generationId == 2)
        #expect(s.joins[a]?.members.map(\.memberId) == ["a", "c"])
        #expect(s.joins[c]?.generationId == 2)
        #expect(s.group.members["b"] == nil)
        #expect(s.heartbeat("b", generation: 1) == .unknownMemberId)
    }

    @Test("leaving members trigger a rebalance; when the last leaves the group is Empty")
    func leave() throws {
        var s = Session()
        _ = s.joinNew("a")
        _ = s.joinNew("b")
        s.advance(to: 3_000)
        _ = s.sync("b", generation: 1)
        _ = s.sync("a", generation: 1, assignments: [:])
        let (results, actions) = s.group.leaveReceived([.init(memberId: "b"), .init(memberId: "nobody")], now: s.now)
        s.record(actions)
        #expect(results == [nil, .unknownMemberId])
        #expect(s.group.state == .preparingRebalance)
        let rejoin = s.join("a")
        #expect(s.joins[rejoin]?.generationId == 2)

        let (last, lastActions) = s.group.leaveReceived([.init(memberId: "a")], now: s.now)
        s.record(lastActions)
        #expect(last == [nil])
        #expect(s.group.state == .empty)
        #expect(s.group.generationId == 3)
        #expect(s.persisted.last?.members == [])
    }

    @Test("a member leaving while others wait to rejoin lets the rebalance finish; its parked join is answered")
    func leaveWhileParked() throws {
        var s = Session.stableWithOne()
        let b = s.joinNew("b")
        let (_, actions) = s.group.leaveReceived([.init(memberId: "b")], now: s.now)
        s.record(actions)
        #expect(s.joins[b]?.error == .unknownMemberId)
        let a = s.join("a")
        #expect(s.joins[a]?.generationId == 2)
        #expect(s.joins[a]?.members.map(\.memberId) == ["a"])
    }

    @Test("a static member that restarts takes its old place without a rebalance; its old id is fenced")
    func staticMemberRejoin() throws {
        var s = Session()
        let leaderJoin = s.join("", instance: "host-1", newId: "s1")
        let followerJoin = s.join("", instance: "host-2", newId: "s2")
        s.advance(to: 3_000)
        #expect(s.joins[leaderJoin]?.memberId == "s1", "static members need no second join")
        #expect(s.joins[followerJoin]?.generationId == 1)
        _ = s.sync("s2", generation: 1, instance: "host-2")
        _ = s.sync("s1", generation: 1, assignments: ["s1": [1], "s2": [2]], instance: "host-1")
        #expect(s.group.state == .stable)

        let restarted = s.join("", instance: "host-2", newId: "s2-again")
        #expect(s.joins[restarted]?.memberId == "s2-again")
        #expect(s.joins[restarted]?.generationId == 1)
        #expect(s.group.state == .stable)
        #expect(s.group.generationId == 1)
        let sync = s.sync("s2-again", generation: 1, instance: "host-2")
        #expect(s.syncs[sync]?.assignment == [2], "the restarted member keeps its assignment")
        #expect(s.heartbeat("s2", generation: 1, instance: "host-2") == .fencedInstanceId)
        #expect(s.heartbeat("s2-again", generation: 1, instance: "host-2") == nil)
        #expect(s.persisted.last?.members.map(\.memberId) == ["s1", "s2-again"])

        let (results, _) = s.group.leaveReceived([.init(memberId: "s2", groupInstanceId: "host-2")], now: s.now)
        #expect(results == [.fencedInstanceId])
    }

    @Test("offset commits in every state")
    func commitsInEveryState() throws {
        var s = Session()
        #expect(s.commit("", generation: -1) == nil, "simple commits are allowed in an empty group")
        #expect(s.commit("x", generation: 3) == .illegalGeneration)

        let a = s.joinNew("a")
        #expect(s.group.state == .preparingRebalance)
        #expect(s.commit("", generation: -1) == .unknownMemberId, "no simple commits once the group has members")
        #expect(s.commit("a", generation: 0) == nil, "PreparingRebalance: the current generation may still commit")
        s.advance(to: 3_000)
        #expect(s.joins[a]?.generationId == 1)
        #expect(s.group.state == .completingRebalance)
        #expect(s.commit("a", generation: 1) == .rebalanceInProgress)
        #expect(s.group.offsetCommitReceived(memberId: "a", groupInstanceId: nil, generationId: 1, transactional: true, now: s.now) == nil,
                "a transactional commit (TxnOffsetCommit) is accepted while completing the rebalance, as in Kafka")
        _ = s.sync("a", generation: 1, assignments: [:])
        #expect(s.group.state == .stable)
        #expect(s.commit("a", generation: 1) == nil)
        #expect(s.group.offsetCommitReceived(memberId: "", groupInstanceId: nil, generationId: -1, transactional: true, now: s.now) == nil,
                "a transactional producer without group metadata (before KIP-447) commits unchecked")
        #expect(s.group.offsetCommitReceived(memberId: "a", groupInstanceId: nil, generationId: 0, transactional: true, now: s.now) == .illegalGeneration,
                "KIP-447: a transactional commit from an old generation is fenced")
        #expect(s.commit("a", generation: 0) == .illegalGeneration)
        #expect(s.commit("ghost", generation: 1) == .unknownMemberId)

        #expect(s.group.deleteReceived(now: s.now) == .nonEmptyGroup)
        let (_, actions) = s.group.leaveReceived([.init(memberId: "a")], now: s.now)
        s.record(actions)
        #expect(s.group.state == .empty)
        #expect(s.commit("a", generation: 1) == .illegalGeneration)
        #expect(s.group.deleteReceived(now: s.now) == nil)
        #expect(s.group.state == .dead)
        #expect(s.commit("", generation: -1) == .coordinatorNotAvailable)
    }

    @Test("a commit proves the member alive")
    func commitRefreshesSession() throws {
        var s = Session.stableWithOne()
        s.now = 12_000
        #expect(s.commit("a", generation: 1) == nil)
        s.advance(to: 20_000)
        #expect(s.group.members["a"] != nil)
        s.advance(to: 22_000)
        #expect(s.group.members["a"] == nil)
    }

    @Test("offsets of an empty group expire after retention counted from when it became empty")
    func retention() throws {
        var s = Session.stableWithOne()
        let tp = GroupPartition("t", 0)
        s.group.offsetsCommitted([tp: CommittedOffset(offset: 5, metadata: nil, commitTimestampMs: 3_000)])
        #expect(s.group.expiredOffsets(now: 1_000_000).isEmpty, "a live group keeps its offsets")
        s.now = 100_000
        let (_, actions) = s.group.leaveReceived([.init(memberId: "a")], now: s.now)
        s.record(actions)
        #expect(s.group.expiredOffsets(now: 159_999).isEmpty)
        #expect(s.group.expiredOffsets(now: 160_000) == [tp])
        s.group.offsetsRemoved([tp])
        #expect(s.group.isForgettable)

        var simple = ConsumerGroup(groupId: "simple", config: Self.config, now: 0)
        simple.offsetsCommitted([
            GroupPartition("t", 0): CommittedOffset(offset: 1, metadata: nil, commitTimestampMs: 10_000),
            GroupPartition("t", 1): CommittedOffset(offset: 1, metadata: nil, commitTimestampMs: 50_000),
        ])
        #expect(simple.expiredOffsets(now: 70_000) == [GroupPartition("t", 0)], "simple groups count from each commit")
    }

    @Test("a group restored from its snapshot is Stable with its members, assignments and generation")
    func restore() throws {
        var s = Session()
        _ = s.joinNew("a")
        _ = s.joinNew("b")
        s.advance(to: 3_000)
        _ = s.sync("b", generation: 1)
        _ = s.sync("a", generation: 1, assignments: ["a": [1], "b": [2]])
        let snapshot = try #require(s.persisted.last)

        var restored = ConsumerGroup(restoring: snapshot, config: Self.config, now: 50_000)
        #expect(restored.state == .stable)
        #expect(restored.generationId == 1)
        #expect(restored.leaderId == "a")
        #expect(restored.protocolName == "range")
        #expect(restored.snapshot.members == snapshot.members)
        #expect(restored.heartbeatReceived(memberId: "b", groupInstanceId: nil, generationId: 1, now: 50_001) == nil)
        // Members that died with the old broker time out from the restart on.
        _ = restored.tick(now: 60_000)
        #expect(restored.members["a"] == nil)
        #expect(restored.state == .preparingRebalance)

        let empty = GroupSnapshot(
            groupId: "e", protocolType: "consumer", generationId: 4, protocolName: nil, leaderId: nil,
            stateTimestampMs: 7, members: [])
        let emptyGroup = ConsumerGroup(restoring: empty, config: Self.config, now: 9)
        #expect(emptyGroup.state == .empty)
        #expect(emptyGroup.generationId == 4)
        #expect(emptyGroup.stateTimestampMs == 7)
    }
}
