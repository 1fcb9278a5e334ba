import KafkaProtocol
import NIOCore
@testable import OnceBroker
import OnceCore
import OnceStorage
import Testing

/// KIP-848's APIs through `Broker.handle`: heartbeats, commits checked against member epochs,
/// the group rebuilt from `__consumer_offsets` (log and snapshot), and the feature advertised.
@Suite("KIP-848 consumer group requests")
struct ConsumerGroupRequestTests {
    static func heartbeat(
        _ h: BrokerHarness, member: String, epoch: Int32, owned: [Int32]? = nil, join: Bool = false
    ) async throws -> ConsumerGroupHeartbeatResponse {
        var req = ConsumerGroupHeartbeatRequest()
        req.groupId = "g"
        req.memberId = member
        req.memberEpoch = epoch
        if join {
            req.rebalanceTimeoutMs = 10_000
            req.subscribedTopicNames = ["t"]
            req.topicPartitions = []
        }
        if let owned, let id = h.storage.topic(named: "t")?.id {
            var tp = ConsumerGroupHeartbeatRequest.TopicPartitions()
            tp.topicId = id
            tp.partitions = owned
            req.topicPartitions = owned.isEmpty ? [] : [tp]
        }
        return try #require(try await h.send(req, version: 1))
    }

    static func partitions(_ r: ConsumerGroupHeartbeatResponse) -> [Int32]? {
        r.assignment.map { $0.topicPartitions.flatMap(\.partitions).sorted() }
    }

    static func commit(_ h: BrokerHarness, member: String, epoch: Int32, version: Int16 = 9) async throws -> Int16 {
        var req = OffsetCommitRequest()
        req.groupId = "g"
        req.memberId = member
        req.generationIdOrMemberEpoch = epoch
        var t = OffsetCommitRequest.OffsetCommitRequestTopic()
        t.name = "t"
        var p = OffsetCommitRequest.OffsetCommitRequestPartition()
        p.partitionIndex = 0
        p.committedOffset = 5
        t.partitions = [p]
        req.topics = [t]
        return try #require(try await h.send(req, version: version)).topics[0].partitions[0].errorCode
    }

    @Test("two members split a topic cooperatively; commits need the current member epoch")
    func heartbeatsAndCommits() async throws {
        let h = BrokerHarness()
        try h.storage.createTopic(name: "t", partitions: 4, configs: [:])
        let a = try await Self.heartbeat(h, member: "a", epoch: 0, join: true)
        #expect(a.errorCode == 0 && a.memberEpoch == 1 && Self.partitions(a) == [0, 1, 2, 3])
        let b = try await Self.heartbeat(h, member: "b", epoch: 0, join: true)
        #expect(b.memberEpoch == 2 && Self.partitions(b) == [])
        let revoke = try await Self.heartbeat(h, member: "a", epoch: 1, owned: [0, 1, 2, 3])
        let kept = try #require(Self.partitions(revoke))
        #expect(kept.count == 2 && revoke.memberEpoch == 1)
        let done = try await Self.heartbeat(h, member: "a", epoch: 1, owned: kept)
        #expect(done.memberEpoch == 2)
        let given = try await Self.heartbeat(h, member: "b", epoch: 2, owned: [])
        #expect(Set(try #require(Self.partitions(given))) == Set([0, 1, 2, 3]).subtracting(kept))

        #expect(try await Self.commit(h, member: "a", epoch: 2) == 0)
        #expect(try await Self.commit(h, member: "a", epoch: 1) == ErrorCode.staleMemberEpoch.rawValue)
        #expect(try await Self.commit(h, member: "nobody", epoch: 2) == ErrorCode.unknownMemberId.rawValue)
        #expect(try await Self.commit(h, member: "a", epoch: 2, version: 8) == ErrorCode.unsupportedVersion.rawValue)
        #expect(try await Self.heartbeat(h, member: "a", epoch: 9, owned: kept).errorCode == ErrorCode.fencedMemberEpoch.rawValue)

        var listed = ListGroupsRequest()
        listed.typesFilter = ["consumer"]
        let groups = try #require(try await h.send(listed, version: 5)).groups
        #expect(groups.map(\.groupId) == ["g"] && groups[0].groupType == "consumer" && groups[0].groupState == "Stable")
    }

    @Test("the group comes back from the log and from a snapshot with its epochs and assignments", arguments: [false, true])
    func durability(snapshot: Bool) async throws {
        let storage = MemoryLogStorage()
        let h = BrokerHarness(storage: storage)
        try h.storage.createTopic(name: "t", partitions: 2, configs: [:])
        let a = try await Self.heartbeat(h, member: "a", epoch: 0, join: true)
        let b = try await Self.heartbeat(h, member: "b", epoch: 0, join: true)
        let kept = try #require(Self.partitions(try await Self.heartbeat(h, member: "a", epoch: a.memberEpoch, owned: [0, 1])))
        _ = try await Self.heartbeat(h, member: "a", epoch: a.memberEpoch, owned: kept)
        _ = try await Self.heartbeat(h, member: "b", epoch: b.memberEpoch, owned: [])
        _ = try await Self.heartbeat(h, member: "c", epoch: 0, join: true)
        _ = try await Self.heartbeat(h, member: "c", epoch: ModernGroup.leaveEpoch)
        if snapshot { try h.broker.groups.snapshot() }
        let before = try #require(h.broker.groups.modernGroup("g"))

        let restarted = BrokerHarness(storage: storage)
        let after = try #require(restarted.broker.groups.modernGroup("g"))
        #expect(after.groupEpoch == before.groupEpoch)
        #expect(after.assignmentEpoch == before.assignmentEpoch)
        #expect(after.targetAssignment == before.targetAssignment)
        #expect(after.members.mapValues(\.assigned) == before.members.mapValues(\.assigned))
        #expect(after.members.mapValues(\.memberEpoch) == before.members.mapValues(\.memberEpoch))
        // The members carry on from their epochs, up to the epoch c's leaving started.
        let again = try await Self.heartbeat(restarted, member: "a", epoch: before.members["a"]!.memberEpoch, owned: kept)
        #expect(again.errorCode == 0)
        #expect(again.memberEpoch == before.groupEpoch)
    }

    @Test("ApiVersions finalizes group.version 1 and offers the APIs only with the consumer protocol on")
    func advertised() async throws {
        for enabled in [true, false] {
            let h = BrokerHarness { $0.consumerGroupProtocolEnabled = enabled }
            // v4: below it a supported range starting at 0 is left out, as Kafka does (KAFKA-17492).
            let r = try #require(try await h.send(ApiVersionsRequest(), version: 4))
            #expect(r.apiKeys.contains { $0.apiKey == ApiKey.consumerGroupHeartbeat.rawValue && $0.maxVersion == 1 } == enabled)
            #expect(r.apiKeys.contains { $0.apiKey == ApiKey.consumerGroupDescribe.rawValue } == enabled)
            #expect(r.supportedFeatures.contains { $0.name == "group.version" && $0.maxVersion == 1 })
            #expect(r.finalizedFeatures.contains { $0.name == "group.version" && $0.maxVersionLevel == 1 } == enabled)
        }
    }
}
