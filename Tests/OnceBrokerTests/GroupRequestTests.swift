import KafkaProtocol
import NIOCore
@testable import OnceBroker
import OnceCore
import OnceStorage
import Testing

/// The group coordinator's APIs through `Broker.handle`, encoded and decoded as a client would.
@Suite("Group coordinator requests")
struct GroupRequestTests {
    static func harness(storage: MemoryLogStorage = MemoryLogStorage()) -> BrokerHarness {
        BrokerHarness(storage: storage) { $0.groupInitialRebalanceDelayMs = 0 }
    }

    /// A consumer-protocol subscription as clients put it in JoinGroup.
    static func subscription(_ topics: [String]) -> [UInt8] {
        var s = ConsumerProtocolSubscription()
        s.topics = topics
        var buffer = ByteBufferAllocator().buffer(capacity: 64)
        buffer.writeInteger(Int16(0))
        s.encode(into: &buffer, version: 0)
        return Array(buffer: buffer)
    }

    static func joinRequest(memberId: String = "", group: String = "g", topics: [String] = ["t"], instance: String? = nil) -> JoinGroupRequest {
        var req = JoinGroupRequest()
        req.groupId = group
        req.memberId = memberId
        req.groupInstanceId = instance
        req.sessionTimeoutMs = 10_000
        req.rebalanceTimeoutMs = 10_000
        req.protocolType = "consumer"
        var p = JoinGroupRequest.JoinGroupRequestProtocol()
        p.name = "range"
        p.metadata = subscription(topics)
        req.protocols = [p]
        return req
    }

    /// Starts a request without waiting for its answer (JoinGroup/SyncGroup park).
    static func start<R: KafkaRequest>(_ h: BrokerHarness, _ request: R, version: Int16) throws -> EventLoopFuture<ByteBuffer?> {
        try h.broker.handle(frame: BrokerHarness.frame(request, version: version), eventLoop: h.eventLoop)
    }

    static func finish<R: KafkaRequest>(_ future: EventLoopFuture<ByteBuffer?>, as _: R.Type, version: Int16) async throws -> R.Response {
        var response = try #require(try await future.get())
        _ = response.readInteger(as: Int32.self)
        _ = try ResponseHeader(from: &response, version: KafkaHeaderVersions.response(apiKey: R.apiKey, apiVersion: version))
        return try R.Response(from: &response, version: version)
    }

    /// Joins a new member (KIP-394's two steps), returning the final JoinGroup response.
    static func joinNew(_ h: BrokerHarness, group: String = "g", topics: [String] = ["t"], version: Int16 = 5) async throws -> JoinGroupResponse {
        let first = try #require(try await h.send(joinRequest(group: group, topics: topics), version: version))
        #expect(first.errorCode == ErrorCode.memberIdRequired.rawValue)
        #expect(!first.memberId.isEmpty)
        return try #require(try await h.send(joinRequest(memberId: first.memberId, group: group, topics: topics), version: version))
    }

    static func sync(_ h: BrokerHarness, group: String = "g", memberId: String, generation: Int32, assignments: [String: [UInt8]] = [:]) async throws -> SyncGroupResponse {
        var req = SyncGroupRequest()
        req.groupId = group
        req.memberId = memberId
        req.generationId = generation
        req.assignments = assignments.map {
            var a = SyncGroupRequest.SyncGroupRequestAssignment()
            a.memberId = $0.key
            a.assignment = $0.value
            return a
        }
        return try #require(try await h.send(req, version: 5))
    }

    static func heartbeat(_ h: BrokerHarness, memberId: String, generation: Int32) async throws -> Int16 {
        var req = HeartbeatRequest()
        req.groupId = "g"
        req.memberId = memberId
        req.generationId = generation
        return try #require(try await h.send(req, version: 4)).errorCode
    }

    static func commit(
        _ h: BrokerHarness, group: String = "g", memberId: String = "", generation: Int32 = -1,
        _ offsets: [(String, Int32, Int64)], version: Int16 = 8
    ) async throws -> [Int16] {
        var req = OffsetCommitRequest()
        req.groupId = group
        req.memberId = memberId
        req.generationIdOrMemberEpoch = generation
        req.topics = Dictionary(grouping: offsets, by: \.0).sorted { $0.key < $1.key }.map { name, entries in
            var t = OffsetCommitRequest.OffsetCommitRequestTopic()
            t.name = name
            t.partitions = entries.map {
                var p = OffsetCommitRequest.OffsetCommitRequestPartition()
                p.partitionIndex = $0.1
                p.committedOffset = $0.2
                p.committedMetadata = "m"
                return p
            }
            return t
        }
        let response = try #require(try await h.send(req, version: version))
        return response.topics.flatMap { $0.partitions.map(\.errorCode) }
    }

    static func fetchOffsets(_ h: BrokerHarness, group: String = "g", topic: String, partitions: [Int32]) async throws -> [Int64] {
        var req = OffsetFetchRequest()
        req.groupId = group
        var t = OffsetFetchRequest.OffsetFetchRequestTopic()
        t.name = topic
        t.partitionIndexes = partitions
        req.topics = [t]
        let response = try #require(try await h.send(req, version: 5))
        #expect(response.errorCode == 0)
        return response.topics.flatMap { $0.partitions.map(\.committedOffset) }
    }

    static func createTopic(_ h: BrokerHarness, _ name: String, partitions: Int32) throws {
        try h.storage.createTopic(name: name, partitions: partitions, configs: [:])
    }

    @Test("FindCoordinator names this broker for groups and transactional ids, one key or a batch")
    func findCoordinator() async throws {
        let h = Self.harness()
        for version: Int16 in 0...3 {
            var req = FindCoordinatorRequest()
            req.key = "g"
            req.keyType = version == 0 ? 0 : 1
            let response = try #require(try await h.send(req, version: version))
            #expect(response.errorCode == 0)
            #expect(response.nodeId == 1)
            #expect(response.host == "127.0.0.1")
            #expect(response.port == 9092)
        }
        var batched = FindCoordinatorRequest()
        batched.coordinatorKeys = ["a", "b"]
        let response = try #require(try await h.send(batched, version: 4))
        #expect(response.coordinators.map(\.key) == ["a", "b"])
        #expect(response.coordinators.allSatisfy { $0.nodeId == 1 && $0.errorCode == 0 && $0.port == 9092 })

        batched.keyType = 7
        let unknown = try #require(try await h.send(batched, version: 4))
        #expect(unknown.coordinators.allSatisfy { $0.errorCode == ErrorCode.invalidRequest.rawValue })
    }

    @Test("join, sync, heartbeat, commit, fetch, describe, leave and delete a group")
    func fullLifecycle() async throws {
        let h = Self.harness()
        try Self.createTopic(h, "t", partitions: 2)
        let join = try await Self.joinNew(h)
        #expect(join.errorCode == 0)
        #expect(join.generationId == 1)
        #expect(join.leader == join.memberId)
        #expect(join.protocolName == "range")
        #expect(join.members.map(\.memberId) == [join.memberId])
        #expect(join.memberId.hasPrefix("harness-"))

        let sync = try await Self.sync(h, memberId: join.memberId, generation: 1, assignments: [join.memberId: [9, 9]])
        #expect(sync.errorCode == 0)
        #expect(sync.assignment == [9, 9])
        #expect(sync.protocolName == "range")
        #expect(try await Self.heartbeat(h, memberId: join.memberId, generation: 1) == 0)
        #expect(try await Self.heartbeat(h, memberId: join.memberId, generation: 0) == ErrorCode.illegalGeneration.rawValue)
        #expect(try await Self.heartbeat(h, memberId: "nobody", generation: 1) == ErrorCode.unknownMemberId.rawValue)

        let committed = try await Self.commit(h, memberId: join.memberId, generation: 1, [("t", 0, 5), ("t", 1, 7), ("t", 2, 1), ("nope", 0, 1)])
        #expect(committed == [ErrorCode.unknownTopicOrPartition.rawValue, 0, 0, ErrorCode.unknownTopicOrPartition.rawValue])
        #expect(try await Self.commit(h, memberId: join.memberId, generation: 0, [("t", 0, 6)]) == [ErrorCode.illegalGeneration.rawValue])
        #expect(try await Self.commit(h, [("t", 0, 6)]) == [ErrorCode.unknownMemberId.rawValue], "no simple commits into a live group")
        #expect(try await Self.fetchOffsets(h, topic: "t", partitions: [0, 1, 2]) == [5, 7, -1])

        var multi = OffsetFetchRequest()
        var g = OffsetFetchRequest.OffsetFetchRequestGroup()
        g.groupId = "g"
        g.topics = nil
        var other = OffsetFetchRequest.OffsetFetchRequestGroup()
        other.groupId = "unknown"
        multi.groups = [g, other]
        let fetched = try #require(try await h.send(multi, version: 8))
        #expect(fetched.groups.map(\.groupId) == ["g", "unknown"])
        #expect(fetched.groups[0].topics.map(\.name) == ["t"])
        #expect(fetched.groups[0].topics[0].partitions.map(\.committedOffset) == [5, 7])
        #expect(fetched.groups[0].topics[0].partitions.map(\.metadata) == ["m", "m"])
        #expect(fetched.groups[1].topics.isEmpty)

        let listed = try #require(try await h.send(ListGroupsRequest(), version: 4))
        #expect(listed.groups.map(\.groupId) == ["g"])
        #expect(listed.groups.map(\.groupState) == ["Stable"])
        var describe = DescribeGroupsRequest()
        describe.groups = ["g", "missing"]
        let described = try #require(try await h.send(describe, version: 5))
        #expect(described.groups[0].groupState == "Stable")
        #expect(described.groups[0].protocolData == "range")
        #expect(described.groups[0].members.map(\.memberAssignment) == [[9, 9]])
        #expect(described.groups[0].members.map(\.clientId) == ["harness"])
        #expect(described.groups[1].groupState == "Dead")

        var delete = DeleteGroupsRequest()
        delete.groupsNames = ["g"]
        #expect(try #require(try await h.send(delete, version: 2)).results.map(\.errorCode) == [ErrorCode.nonEmptyGroup.rawValue])

        var leave = LeaveGroupRequest()
        leave.groupId = "g"
        var me = LeaveGroupRequest.MemberIdentity()
        me.memberId = join.memberId
        var stranger = LeaveGroupRequest.MemberIdentity()
        stranger.memberId = "stranger"
        leave.members = [me, stranger]
        let left = try #require(try await h.send(leave, version: 4))
        #expect(left.errorCode == 0)
        #expect(left.members.map(\.errorCode) == [0, ErrorCode.unknownMemberId.rawValue])
        #expect(try #require(try await h.send(describe, version: 5)).groups[0].groupState == "Empty")

        #expect(try #require(try await h.send(delete, version: 2)).results.map(\.errorCode) == [0])
        #expect(try #require(try await h.send(ListGroupsRequest(), version: 4)).groups.isEmpty)
        #expect(try await Self.fetchOffsets(h, topic: "t", partitions: [0, 1]) == [-1, -1])
        delete.groupsNames = ["g"]
        #expect(try #require(try await h.send(delete, version: 2)).results.map(\.errorCode) == [ErrorCode.groupIdNotFound.rawValue])
    }

    @Test("JoinGroup is long-polled until every member has rejoined")
    func longPolledRebalance() async throws {
        let h = Self.harness()
        let a = try await Self.joinNew(h)
        _ = try await Self.sync(h, memberId: a.memberId, generation: 1, assignments: [:])

        let first = try #require(try await h.send(Self.joinRequest(), version: 5))
        let pending = try Self.start(h, Self.joinRequest(memberId: first.memberId), version: 5)
        #expect(try await Self.heartbeat(h, memberId: a.memberId, generation: 1) == ErrorCode.rebalanceInProgress.rawValue)
        let rejoin = try await h.send(Self.joinRequest(memberId: a.memberId), version: 5)
        #expect(rejoin?.generationId == 2)
        #expect(rejoin?.members.count == 2, "the leader sees both members")
        let b = try await Self.finish(pending, as: JoinGroupRequest.self, version: 5)
        #expect(b.generationId == 2)
        #expect(b.leader == a.memberId)
        #expect(b.members.isEmpty)

        // The follower's SyncGroup waits for the leader's.
        var followerSync = SyncGroupRequest()
        followerSync.groupId = "g"
        followerSync.memberId = b.memberId
        followerSync.generationId = 2
        let parkedSync = try Self.start(h, followerSync, version: 3)
        _ = try await Self.sync(h, memberId: a.memberId, generation: 2, assignments: [a.memberId: [1], b.memberId: [2]])
        #expect(try await Self.finish(parkedSync, as: SyncGroupRequest.self, version: 3).assignment == [2])

        // The follower stops heartbeating; after its session the coordinator drops it.
        h.broker.groups.tick(now: Clock.nowMilliseconds() + 60_000)
        #expect(try await Self.heartbeat(h, memberId: b.memberId, generation: 2) == ErrorCode.unknownMemberId.rawValue)
    }

    @Test("stopping the coordinator answers parked requests with COORDINATOR_NOT_AVAILABLE")
    func stopAnswersParkedRequests() async throws {
        let h = BrokerHarness { $0.groupInitialRebalanceDelayMs = 60_000 }
        let first = try #require(try await h.send(Self.joinRequest(), version: 5))
        let parked = try Self.start(h, Self.joinRequest(memberId: first.memberId), version: 5)
        h.broker.groups.stop()
        let answer = try await Self.finish(parked, as: JoinGroupRequest.self, version: 5)
        #expect(answer.errorCode == ErrorCode.coordinatorNotAvailable.rawValue)
    }

    @Test("group metadata and committed offsets are rebuilt from __consumer_offsets after a restart")
    func durability() async throws {
        let storage = MemoryLogStorage()
        let h = Self.harness(storage: storage)
        try Self.createTopic(h, "t", partitions: 3)
        let join = try await Self.joinNew(h)
        _ = try await Self.sync(h, memberId: join.memberId, generation: 1, assignments: [join.memberId: [4]])
        _ = try await Self.commit(h, memberId: join.memberId, generation: 1, [("t", 0, 11), ("t", 1, 12)])
        _ = try await Self.commit(h, memberId: join.memberId, generation: 1, [("t", 0, 13)])
        #expect(try await Self.commit(h, group: "simple", [("t", 2, 3)]) == [0])
        var deleteOffsets = OffsetDeleteRequest()
        deleteOffsets.groupId = "simple"
        var topic = OffsetDeleteRequest.OffsetDeleteRequestTopic()
        topic.name = "t"
        var partition = OffsetDeleteRequest.OffsetDeleteRequestPartition()
        partition.partitionIndex = 2
        topic.partitions = [partition]
        deleteOffsets.topics = [topic]
        #expect(try #require(try await h.send(deleteOffsets, version: 0)).errorCode == 0)
        _ = try await Self.commit(h, group: "gone", [("t", 0, 1)])
        var delete = DeleteGroupsRequest()
        delete.groupsNames = ["gone"]
        _ = try await h.send(delete, version: 2)

        let restarted = Self.harness(storage: storage)
        #expect(try await Self.fetchOffsets(restarted, topic: "t", partitions: [0, 1, 2]) == [13, 12, -1])
        #expect(try await Self.fetchOffsets(restarted, group: "simple", topic: "t", partitions: [2]) == [-1])
        #expect(try await Self.fetchOffsets(restarted, group: "gone", topic: "t", partitions: [0]) == [-1])
        let group = try #require(restarted.broker.groups.group("g"))
        #expect(group.state == .stable)
        #expect(group.generationId == 1)
        #expect(group.members[join.memberId]?.assignment == [4])
        // The member carries on with its generation as if nothing happened.
        #expect(try await Self.heartbeat(restarted, memberId: join.memberId, generation: 1) == 0)
        #expect(try await Self.commit(restarted, memberId: join.memberId, generation: 1, [("t", 1, 20)]) == [0])
    }

    @Test("OffsetDelete refuses topics a live group consumes; deleting a topic drops its offsets")
    func offsetDeleteAndTopicDeletion() async throws {
        let h = Self.harness()
        try Self.createTopic(h, "t", partitions: 1)
        try Self.createTopic(h, "other", partitions: 1)
        let join = try await Self.joinNew(h, topics: ["t"])
        _ = try await Self.sync(h, memberId: join.memberId, generation: 1)
        _ = try await Self.commit(h, memberId: join.memberId, generation: 1, [("t", 0, 1), ("other", 0, 2)])

        var req = OffsetDeleteRequest()
        req.groupId = "g"
        req.topics = ["t", "other"].map { name in
            var t = OffsetDeleteRequest.OffsetDeleteRequestTopic()
            t.name = name
            var p = OffsetDeleteRequest.OffsetDeleteRequestPartition()
            p.partitionIndex = 0
            t.partitions = [p]
            return t
        }
        let response = try #require(try await h.send(req, version: 0))
        #expect(response.topics.map { $0.partitions[0].errorCode } == [ErrorCode(86).rawValue, 0])
        #expect(try await Self.fetchOffsets(h, topic: "t", partitions: [0]) == [1])
        #expect(try await Self.fetchOffsets(h, topic: "other", partitions: [0]) == [-1])

        var deleteTopic = DeleteTopicsRequest()
        deleteTopic.topicNames = ["t"]
        _ = try await h.send(deleteTopic, version: 4)
        #expect(try await Self.fetchOffsets(h, topic: "t", partitions: [0]) == [-1])

        req.groupId = "missing"
        #expect(try #require(try await h.send(req, version: 0)).errorCode == ErrorCode.groupIdNotFound.rawValue)
    }

    @Test("a commit with a generation to a group that does not exist is ILLEGAL_GENERATION")
    func commitToUnknownGroup() async throws {
        let h = Self.harness()
        try Self.createTopic(h, "t", partitions: 1)
        #expect(try await Self.commit(h, group: "new", memberId: "m", generation: 3, [("t", 0, 1)], version: 2) == [ErrorCode.illegalGeneration.rawValue])
        #expect(try #require(try await h.send(ListGroupsRequest(), version: 0)).groups.isEmpty)
    }

    @Test("Metadata lists __consumer_offsets as an internal topic")
    func internalTopic() async throws {
        let h = Self.harness()
        try Self.createTopic(h, "t", partitions: 1)
        _ = try await Self.commit(h, [("t", 0, 1)])
        var all = MetadataRequest()
        all.topics = nil
        let response = try #require(try await h.send(all, version: 12))
        let topics = Dictionary(uniqueKeysWithValues: response.topics.map { ($0.name, $0.isInternal) })
        #expect(topics["__consumer_offsets"] == true)
        #expect(topics["t"] == false)
    }
}
