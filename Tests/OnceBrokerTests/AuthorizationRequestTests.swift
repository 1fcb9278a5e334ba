import KafkaProtocol
import NIOCore
@testable import OnceBroker
import OnceCore
import OnceStorage
import Testing

/// Every API's authorization check through `Broker.handle`, with sessions for different principals:
/// `User:admin` is a super user, `User:alice` owns what the ACLs grant her, `User:bob` is the stranger.
@Suite struct AuthorizationRequestTests {
    static let admin = KafkaPrincipal(name: "admin")
    static let alice = KafkaPrincipal(name: "alice")
    static let bob = KafkaPrincipal(name: "bob")

    static func session(_ principal: KafkaPrincipal, host: String = "127.0.0.1") -> ConnectionSession {
        // A transport-established principal (as a client certificate gives) needs no SASL exchange.
        ConnectionSession(listenerName: "SSL", securityProtocol: .ssl, peerHost: host, principal: principal)
    }

    let harness: BrokerHarness

    init() {
        harness = Self.secured()
    }

    static func secured(storage: MemoryLogStorage = MemoryLogStorage()) -> BrokerHarness {
        BrokerHarness(storage: storage) { config in
            config.authorizerEnabled = true
            config.superUsers = [admin]
        }
    }

    func send<R: KafkaRequest>(_ request: R, version: Int16, as principal: KafkaPrincipal) async throws -> R.Response {
        try await harness.send(request, version: version, as: principal)
    }

    func grant(
        _ principal: KafkaPrincipal, _ operation: AclOperation, _ type: AclResourceType, _ name: String,
        pattern: AclPatternType = .literal, permission: AclPermission = .allow
    ) async throws {
        var creation = CreateAclsRequest.AclCreation()
        creation.resourceType = type.rawValue
        creation.resourceName = name
        creation.resourcePatternType = pattern.rawValue
        creation.principal = principal.description
        creation.host = "*"
        creation.operation = operation.rawValue
        creation.permissionType = permission.rawValue
        var req = CreateAclsRequest()
        req.creations = [creation]
        let response = try await send(req, version: 3, as: Self.admin)
        #expect(response.results.map(\.errorCode) == [0])
    }

    func createTopic(_ name: String, partitions: Int32 = 1) throws {
        _ = try harness.storage.createTopic(name: name, partitions: partitions, configs: [:])
    }

    func produce(_ topic: String, as principal: KafkaPrincipal, records: ByteBuffer = BrokerHarness.batch(["v"]), transactionalId: String? = nil) async throws -> Int16 {
        var p = ProduceRequest.PartitionProduceData()
        p.records = records
        var t = ProduceRequest.TopicProduceData()
        t.name = topic
        t.partitionData = [p]
        var req = ProduceRequest()
        req.acks = -1
        req.timeoutMs = 5000
        req.transactionalId = transactionalId
        req.topicData = [t]
        return try await send(req, version: 9, as: principal).responses[0].partitionResponses[0].errorCode
    }

    // MARK: The ACL APIs

    @Test func aclApisAnswerSecurityDisabledWithoutAnAuthorizer() async throws {
        let open = BrokerHarness()
        var create = CreateAclsRequest()
        create.creations = [CreateAclsRequest.AclCreation()]
        #expect(try await open.send(create, version: 3)?.results.map(\.errorCode) == [ErrorCode.securityDisabled.rawValue])
        #expect(try await open.send(DescribeAclsRequest(), version: 3)?.errorCode == ErrorCode.securityDisabled.rawValue)
        var delete = DeleteAclsRequest()
        delete.filters = [DeleteAclsRequest.DeleteAclsFilter()]
        #expect(try await open.send(delete, version: 3)?.filterResults.map(\.errorCode) == [ErrorCode.securityDisabled.rawValue])
    }

    @Test func aclApisNeedClusterAlterOrDescribe() async throws {
        var create = CreateAclsRequest()
        create.creations = [CreateAclsRequest.AclCreation()]
        #expect(try await send(create, version: 3, as: Self.bob).results.map(\.errorCode) == [ErrorCode.clusterAuthorizationFailed.rawValue])
        var describe = DescribeAclsRequest()
        describe.resourceTypeFilter = AclResourceType.any.rawValue
        describe.patternTypeFilter = AclPatternType.any.rawValue
        describe.operation = AclOperation.any.rawValue
        describe.permissionType = AclPermission.any.rawValue
        describe.resourceNameFilter = nil
        describe.principalFilter = nil
        describe.hostFilter = nil
        #expect(try await send(describe, version: 3, as: Self.bob).errorCode == ErrorCode.clusterAuthorizationFailed.rawValue)
        try await grant(Self.bob, .describe, .cluster, "kafka-cluster")
        let listed = try await send(describe, version: 3, as: Self.bob)
        #expect(listed.errorCode == 0)
        #expect(listed.resources.map(\.resourceName) == ["kafka-cluster"])
    }

    @Test func createDescribeDeleteFollowKafkasFilters() async throws {
        try await grant(Self.alice, .read, .topic, "payments")
        try await grant(Self.alice, .write, .topic, "pay", pattern: .prefixed)
        try await grant(Self.bob, .read, .group, "billing", permission: .deny)

        var bad = CreateAclsRequest.AclCreation()
        bad.resourceType = AclResourceType.cluster.rawValue
        bad.resourceName = "other"
        bad.principal = "User:alice"
        bad.host = "*"
        bad.operation = AclOperation.alter.rawValue
        bad.permissionType = AclPermission.allow.rawValue
        var unparsable = bad
        unparsable.resourceName = "kafka-cluster"
        unparsable.principal = "alice"
        var create = CreateAclsRequest()
        create.creations = [bad, unparsable]
        let refused = try await send(create, version: 3, as: Self.admin)
        #expect(refused.results.map(\.errorCode) == [ErrorCode.invalidRequest.rawValue, ErrorCode.invalidRequest.rawValue])

        var match = DescribeAclsRequest()
        match.resourceTypeFilter = AclResourceType.topic.rawValue
        match.resourceNameFilter = "payments"
        match.patternTypeFilter = AclPatternType.match.rawValue
        match.principalFilter = nil
        match.hostFilter = nil
        match.operation = AclOperation.any.rawValue
        match.permissionType = AclPermission.any.rawValue
        let matched = try await send(match, version: 3, as: Self.admin)
        #expect(Set(matched.resources.map(\.resourceName)) == ["payments", "pay"])

        var unknown = match
        unknown.patternTypeFilter = AclPatternType.unknown.rawValue
        #expect(try await send(unknown, version: 3, as: Self.admin).errorCode == ErrorCode.invalidRequest.rawValue)

        var byPrincipal = DeleteAclsRequest.DeleteAclsFilter()
        byPrincipal.resourceTypeFilter = AclResourceType.any.rawValue
        byPrincipal.resourceNameFilter = nil
        byPrincipal.patternTypeFilter = AclPatternType.any.rawValue
        byPrincipal.principalFilter = "User:alice"
        byPrincipal.hostFilter = nil
        byPrincipal.operation = AclOperation.any.rawValue
        byPrincipal.permissionType = AclPermission.any.rawValue
        var invalid = byPrincipal
        invalid.operation = AclOperation.unknown.rawValue
        var delete = DeleteAclsRequest()
        delete.filters = [byPrincipal, invalid]
        let deleted = try await send(delete, version: 3, as: Self.admin)
        #expect(deleted.filterResults.map(\.errorCode) == [0, ErrorCode.invalidRequest.rawValue])
        #expect(deleted.filterResults[0].matchingAcls.map(\.resourceName).sorted() == ["pay", "payments"])
        #expect(harness.broker.acls?.current.bindings.map(\.pattern.name) == ["billing"])
    }

    @Test func aclsSurviveARestart() async throws {
        let storage = MemoryLogStorage()
        let first = Self.secured(storage: storage)
        var creation = CreateAclsRequest.AclCreation()
        creation.resourceType = AclResourceType.topic.rawValue
        creation.resourceName = "orders"
        creation.principal = "User:alice"
        creation.host = "*"
        creation.operation = AclOperation.read.rawValue
        creation.permissionType = AclPermission.allow.rawValue
        var req = CreateAclsRequest()
        req.creations = [creation]
        _ = try await first.send(req, version: 3, as: Self.admin)
        let second = Self.secured(storage: storage)
        #expect(second.broker.acls?.current.authorize(Self.alice, host: "h", .read, .topic, "orders") == true)
    }

    @Test func anAuthorizerWithNobodyToGrantAnythingRefusesToStart() throws {
        var config = BrokerConfig()
        config.storage = .memory
        config.authorizerEnabled = true
        #expect(throws: StartupError.self) {
            _ = try Broker(config: config, storage: MemoryLogStorage(), clusterId: "c", logger: .init(label: "test"))
        }
    }

    // MARK: Topics

    @Test func produceNeedsTopicWriteAndFetchTopicRead() async throws {
        try createTopic("orders")
        try await grant(Self.alice, .write, .topic, "orders")
        #expect(try await produce("orders", as: Self.alice) == 0)
        #expect(try await produce("orders", as: Self.bob) == ErrorCode.topicAuthorizationFailed.rawValue)

        var p = FetchRequest.FetchPartition()
        p.partitionMaxBytes = 1 << 20
        var t = FetchRequest.FetchTopic()
        t.topic = "orders"
        t.partitions = [p]
        var fetch = FetchRequest()
        fetch.maxBytes = 1 << 20
        fetch.topics = [t]
        // WRITE is not READ.
        #expect(try await send(fetch, version: 12, as: Self.alice).responses[0].partitions[0].errorCode == ErrorCode.topicAuthorizationFailed.rawValue)
        try await grant(Self.alice, .read, .topic, "orders")
        let fetched = try await send(fetch, version: 12, as: Self.alice).responses[0].partitions[0]
        #expect(fetched.errorCode == 0)
        #expect(try BrokerHarness.values(fetched.records).map(\.value) == ["v"])

        // A deleted ACL stops granting from the next request on.
        var filter = DeleteAclsRequest.DeleteAclsFilter()
        filter.resourceTypeFilter = AclResourceType.topic.rawValue
        filter.resourceNameFilter = "orders"
        filter.patternTypeFilter = AclPatternType.literal.rawValue
        filter.principalFilter = Self.alice.description
        filter.hostFilter = nil
        filter.operation = AclOperation.write.rawValue
        filter.permissionType = AclPermission.allow.rawValue
        var delete = DeleteAclsRequest()
        delete.filters = [filter]
        #expect(try await send(delete, version: 3, as: Self.admin).filterResults[0].matchingAcls.count == 1)
        #expect(try await produce("orders", as: Self.alice) == ErrorCode.topicAuthorizationFailed.rawValue)
        #expect(try await send(fetch, version: 12, as: Self.alice).responses[0].partitions[0].errorCode == 0)
    }

    @Test func transactionalProduceNeedsTransactionalIdWrite() async throws {
        try createTopic("orders")
        try await grant(Self.alice, .write, .topic, "orders")
        let batch = BrokerHarness.idempotentBatch(["t"], producerId: 5, sequence: 0, transactional: true)
        #expect(try await produce("orders", as: Self.alice, records: batch, transactionalId: "app") == ErrorCode.transactionalIdAuthorizationFailed.rawValue)
        #expect(try await produce("orders", as: Self.alice, records: batch, transactionalId: nil) == ErrorCode.transactionalIdAuthorizationFailed.rawValue)
    }

    @Test func metadataHidesWhatThePrincipalMayNotDescribe() async throws {
        try createTopic("public")
        try createTopic("secret")
        try await grant(Self.bob, .read, .topic, "public")
        var all = MetadataRequest()
        all.topics = nil
        #expect(try await send(all, version: 12, as: Self.bob).topics.compactMap(\.name) == ["public"])

        var named = MetadataRequest()
        var secret = MetadataRequest.MetadataRequestTopic()
        secret.name = "secret"
        var missing = MetadataRequest.MetadataRequestTopic()
        missing.name = "never-created"
        named.topics = [secret, missing]
        named.allowAutoTopicCreation = true
        let answer = try await send(named, version: 12, as: Self.bob)
        // Existing or not, the answer is the same: nothing leaks, and nothing is auto-created.
        #expect(answer.topics.map(\.errorCode) == [ErrorCode.topicAuthorizationFailed.rawValue, ErrorCode.topicAuthorizationFailed.rawValue])
        #expect(harness.storage.topic(named: "never-created") == nil)

        // CREATE alone is not enough: the topic must also be one bob may DESCRIBE, as in Kafka.
        try await grant(Self.bob, .create, .topic, "new-", pattern: .prefixed)
        var early = MetadataRequest()
        var first = MetadataRequest.MetadataRequestTopic()
        first.name = "new-zero"
        early.topics = [first]
        #expect(try await send(early, version: 12, as: Self.bob).topics.map(\.errorCode) == [ErrorCode.topicAuthorizationFailed.rawValue])
        try await grant(Self.bob, .describe, .topic, "new-", pattern: .prefixed)
        var create = MetadataRequest()
        var fresh = MetadataRequest.MetadataRequestTopic()
        fresh.name = "new-one"
        create.topics = [fresh]
        create.includeTopicAuthorizedOperations = true
        let created = try await send(create, version: 12, as: Self.bob)
        #expect(created.topics.map(\.errorCode) == [0])
        let bits = created.topics[0].topicAuthorizedOperations
        #expect(bits == 1 << Int32(AclOperation.create.rawValue) | 1 << Int32(AclOperation.describe.rawValue))
    }

    @Test func topicAdministrationIsChecked() async throws {
        try createTopic("orders")
        var deleteTopics = DeleteTopicsRequest()
        deleteTopics.topicNames = ["orders", InternalTopics.transactionState]
        let deleted = try await send(deleteTopics, version: 5, as: Self.bob)
        #expect(deleted.responses.map(\.errorCode) == [ErrorCode.topicAuthorizationFailed.rawValue, ErrorCode.topicAuthorizationFailed.rawValue])
        #expect(harness.storage.topic(named: "orders") != nil)

        var creatable = CreateTopicsRequest.CreatableTopic()
        creatable.name = "fresh"
        creatable.numPartitions = 1
        creatable.replicationFactor = 1
        var createTopics = CreateTopicsRequest()
        createTopics.topics = [creatable]
        #expect(try await send(createTopics, version: 7, as: Self.bob).topics.map(\.errorCode) == [ErrorCode.topicAuthorizationFailed.rawValue])
        try await grant(Self.bob, .create, .cluster, "kafka-cluster")
        // Created, but bob may not DESCRIBE_CONFIGS it: its configs are not shown to him.
        let created = try await send(createTopics, version: 7, as: Self.bob).topics[0]
        #expect(created.errorCode == 0)
        #expect(created.topicConfigErrorCode == ErrorCode.topicAuthorizationFailed.rawValue)
        #expect((created.configs ?? []).isEmpty && created.numPartitions == -1)
        creatable.name = "fresh-2"
        createTopics.topics = [creatable]
        try await grant(Self.bob, .describeConfigs, .topic, "fresh-2")
        let shown = try await send(createTopics, version: 7, as: Self.bob).topics[0]
        #expect(shown.topicConfigErrorCode == 0 && shown.numPartitions == 1 && !(shown.configs ?? []).isEmpty)

        var grow = CreatePartitionsRequest.CreatePartitionsTopic()
        grow.name = "orders"
        grow.count = 2
        var partitions = CreatePartitionsRequest()
        partitions.topics = [grow]
        #expect(try await send(partitions, version: 3, as: Self.bob).results.map(\.errorCode) == [ErrorCode.topicAuthorizationFailed.rawValue])

        var records = DeleteRecordsRequest.DeleteRecordsTopic()
        records.name = "orders"
        var part = DeleteRecordsRequest.DeleteRecordsPartition()
        part.offset = -1
        records.partitions = [part]
        var deleteRecords = DeleteRecordsRequest()
        deleteRecords.topics = [records]
        #expect(try await send(deleteRecords, version: 2, as: Self.bob).topics[0].partitions[0].errorCode == ErrorCode.topicAuthorizationFailed.rawValue)

        var offsets = ListOffsetsRequest.ListOffsetsTopic()
        offsets.name = "orders"
        var lp = ListOffsetsRequest.ListOffsetsPartition()
        lp.timestamp = -1
        offsets.partitions = [lp]
        var listOffsets = ListOffsetsRequest()
        listOffsets.topics = [offsets]
        #expect(try await send(listOffsets, version: 7, as: Self.bob).topics[0].partitions[0].errorCode == ErrorCode.topicAuthorizationFailed.rawValue)

        var resource = DescribeConfigsRequest.DescribeConfigsResource()
        resource.resourceType = ConfigResourceType.topic
        resource.resourceName = "orders"
        var broker = DescribeConfigsRequest.DescribeConfigsResource()
        broker.resourceType = ConfigResourceType.broker
        broker.resourceName = "1"
        var describeConfigs = DescribeConfigsRequest()
        describeConfigs.resources = [resource, broker]
        #expect(
            try await send(describeConfigs, version: 4, as: Self.bob).results.map(\.errorCode)
                == [ErrorCode.topicAuthorizationFailed.rawValue, ErrorCode.clusterAuthorizationFailed.rawValue])
        try await grant(Self.bob, .alterConfigs, .topic, "orders")
        #expect(try await send(describeConfigs, version: 4, as: Self.bob).results.map(\.errorCode) == [0, ErrorCode.clusterAuthorizationFailed.rawValue])

        #expect(try await send(DescribeLogDirsRequest(), version: 4, as: Self.bob).errorCode == ErrorCode.clusterAuthorizationFailed.rawValue)

        // DESCRIBE without DELETE: an existing topic is refused, a missing one is unknown.
        try await grant(Self.bob, .describe, .topic, "orders")
        try await grant(Self.bob, .describe, .topic, "missing")
        deleteTopics.topicNames = ["orders", "missing"]
        #expect(
            try await send(deleteTopics, version: 5, as: Self.bob).responses.map(\.errorCode)
                == [ErrorCode.topicAuthorizationFailed.rawValue, ErrorCode.unknownTopicOrPartition.rawValue])
    }

    // MARK: Transactions

    @Test func aStrangerCannotTouchAnotherApplicationsTransaction() async throws {
        try createTopic("orders")
        try await grant(Self.alice, .write, .transactionalId, "app")
        try await grant(Self.alice, .write, .topic, "orders")
        var initAlice = InitProducerIdRequest()
        initAlice.transactionalId = "app"
        initAlice.transactionTimeoutMs = 60_000
        let owner = try await send(initAlice, version: 4, as: Self.alice)
        #expect(owner.errorCode == 0)

        #expect(try await send(initAlice, version: 4, as: Self.bob).errorCode == ErrorCode.transactionalIdAuthorizationFailed.rawValue)
        var end = EndTxnRequest()
        end.transactionalId = "app"
        end.producerId = owner.producerId
        end.producerEpoch = owner.producerEpoch
        end.committed = true
        #expect(try await send(end, version: 3, as: Self.bob).errorCode == ErrorCode.transactionalIdAuthorizationFailed.rawValue)
        var describe = DescribeTransactionsRequest()
        describe.transactionalIds = ["app"]
        #expect(try await send(describe, version: 0, as: Self.bob).transactionStates.map(\.errorCode) == [ErrorCode.transactionalIdAuthorizationFailed.rawValue])
        #expect(try await send(ListTransactionsRequest(), version: 1, as: Self.bob).transactionStates.isEmpty)
        #expect(try await send(ListTransactionsRequest(), version: 1, as: Self.alice).transactionStates.map(\.transactionalId) == ["app"])

        var topic = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic()
        topic.name = "orders"
        topic.partitions = [0]
        var offsetsTopic = topic
        offsetsTopic.name = InternalTopics.consumerOffsets
        var add = AddPartitionsToTxnRequest()
        add.v3AndBelowTransactionalId = "app"
        add.v3AndBelowProducerId = owner.producerId
        add.v3AndBelowProducerEpoch = owner.producerEpoch
        add.v3AndBelowTopics = [topic]
        #expect(try await send(add, version: 3, as: Self.bob).resultsByTopicV3AndBelow[0].resultsByPartition[0].partitionErrorCode == ErrorCode.transactionalIdAuthorizationFailed.rawValue)
        // The owner may add its topic, but never an internal one.
        add.v3AndBelowTopics = [topic, offsetsTopic]
        let mixed = try await send(add, version: 3, as: Self.alice).resultsByTopicV3AndBelow.map { $0.resultsByPartition[0].partitionErrorCode }
        #expect(mixed == [ErrorCode.operationNotAttempted.rawValue, ErrorCode.topicAuthorizationFailed.rawValue])
        add.v3AndBelowTopics = [topic]
        #expect(try await send(add, version: 3, as: Self.alice).resultsByTopicV3AndBelow[0].resultsByPartition[0].partitionErrorCode == 0)

        var verify = AddPartitionsToTxnRequest()
        var txn = AddPartitionsToTxnRequest.AddPartitionsToTxnTransaction()
        txn.transactionalId = "app"
        txn.verifyOnly = true
        txn.topics = [topic]
        verify.transactions = [txn]
        #expect(try await send(verify, version: 4, as: Self.alice).errorCode == ErrorCode.clusterAuthorizationFailed.rawValue)

        var offsets = AddOffsetsToTxnRequest()
        offsets.transactionalId = "app"
        offsets.producerId = owner.producerId
        offsets.producerEpoch = owner.producerEpoch
        offsets.groupId = "billing"
        #expect(try await send(offsets, version: 3, as: Self.alice).errorCode == ErrorCode.groupAuthorizationFailed.rawValue)

        var commit = TxnOffsetCommitRequest()
        commit.transactionalId = "app"
        commit.groupId = "billing"
        var ct = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic()
        ct.name = "orders"
        ct.partitions = [TxnOffsetCommitRequest.TxnOffsetCommitRequestPartition()]
        commit.topics = [ct]
        #expect(try await send(commit, version: 3, as: Self.bob).topics[0].partitions[0].errorCode == ErrorCode.transactionalIdAuthorizationFailed.rawValue)
        #expect(try await send(commit, version: 3, as: Self.alice).topics[0].partitions[0].errorCode == ErrorCode.groupAuthorizationFailed.rawValue)

        // The owner's commit still goes through.
        #expect(try await send(end, version: 3, as: Self.alice).errorCode == 0)

        var marker = WriteTxnMarkersRequest.WritableTxnMarker()
        marker.producerId = owner.producerId
        var mt = WriteTxnMarkersRequest.WritableTxnMarkerTopic()
        mt.name = "orders"
        mt.partitionIndexes = [0]
        marker.topics = [mt]
        var markers = WriteTxnMarkersRequest()
        markers.markers = [marker]
        #expect(try await send(markers, version: 1, as: Self.alice).markers[0].topics[0].partitions[0].errorCode == ErrorCode.clusterAuthorizationFailed.rawValue)

        // A principal granted CLUSTER_ACTION, as brokers are, writes a coordinator's COMMIT (one
        // with a coordinator epoch); a COMMIT without one is no coordinator's.
        try await grant(Self.alice, .clusterAction, .cluster, "kafka-cluster")
        markers.markers[0].transactionResult = true
        markers.markers[0].producerEpoch = owner.producerEpoch
        #expect(try await send(markers, version: 2, as: Self.alice).markers[0].topics[0].partitions[0].errorCode == 0)
        markers.markers[0].coordinatorEpoch = -1
        #expect(try await send(markers, version: 2, as: Self.alice).markers[0].topics[0].partitions[0].errorCode == ErrorCode.invalidRequest.rawValue)
    }

    @Test func idempotentInitProducerIdNeedsIdempotentWriteOrWriteOnSomeTopic() async throws {
        let req = InitProducerIdRequest()
        #expect(try await send(req, version: 4, as: Self.bob).errorCode == ErrorCode.clusterAuthorizationFailed.rawValue)
        try await grant(Self.bob, .write, .topic, "logs-", pattern: .prefixed)
        #expect(try await send(req, version: 4, as: Self.bob).errorCode == 0)
        #expect(try await send(req, version: 4, as: Self.alice).errorCode == ErrorCode.clusterAuthorizationFailed.rawValue)
        try await grant(Self.alice, .idempotentWrite, .cluster, "kafka-cluster")
        #expect(try await send(req, version: 4, as: Self.alice).errorCode == 0)
    }

    @Test func describeProducersNeedsTopicRead() async throws {
        try createTopic("orders")
        var topic = DescribeProducersRequest.TopicRequest()
        topic.name = "orders"
        topic.partitionIndexes = [0]
        var req = DescribeProducersRequest()
        req.topics = [topic]
        #expect(try await send(req, version: 0, as: Self.bob).topics[0].partitions[0].errorCode == ErrorCode.topicAuthorizationFailed.rawValue)
        try await grant(Self.bob, .read, .topic, "orders")
        #expect(try await send(req, version: 0, as: Self.bob).topics[0].partitions[0].errorCode == 0)
    }

    // MARK: Groups

    @Test func groupApisAreChecked() async throws {
        try createTopic("orders")
        try createTopic("secret")
        try await grant(Self.alice, .read, .group, "billing")
        try await grant(Self.alice, .read, .topic, "orders")

        func commit(_ group: String, _ topics: [String], as principal: KafkaPrincipal) async throws -> [Int16] {
            var req = OffsetCommitRequest()
            req.groupId = group
            req.topics = topics.map { name in
                var t = OffsetCommitRequest.OffsetCommitRequestTopic()
                t.name = name
                var p = OffsetCommitRequest.OffsetCommitRequestPartition()
                p.committedOffset = 1
                t.partitions = [p]
                return t
            }
            return try await send(req, version: 8, as: principal).topics.map { $0.partitions[0].errorCode }
        }
        #expect(try await commit("billing", ["orders", "secret"], as: Self.alice) == [0, ErrorCode.topicAuthorizationFailed.rawValue])
        #expect(try await commit("billing", ["orders"], as: Self.bob) == [ErrorCode.groupAuthorizationFailed.rawValue])
        #expect(harness.broker.groups.committedOffsets(groupId: "billing", partitions: nil).map(\.key.topic) == ["orders"])

        var join = JoinGroupRequest()
        join.groupId = "billing"
        join.sessionTimeoutMs = 10_000
        join.rebalanceTimeoutMs = 10_000
        join.protocolType = "consumer"
        #expect(try await send(join, version: 9, as: Self.bob).errorCode == ErrorCode.groupAuthorizationFailed.rawValue)
        var heartbeat = HeartbeatRequest()
        heartbeat.groupId = "billing"
        #expect(try await send(heartbeat, version: 4, as: Self.bob).errorCode == ErrorCode.groupAuthorizationFailed.rawValue)
        var sync = SyncGroupRequest()
        sync.groupId = "billing"
        #expect(try await send(sync, version: 5, as: Self.bob).errorCode == ErrorCode.groupAuthorizationFailed.rawValue)
        var leave = LeaveGroupRequest()
        leave.groupId = "billing"
        #expect(try await send(leave, version: 5, as: Self.bob).errorCode == ErrorCode.groupAuthorizationFailed.rawValue)

        var fetchGroup = OffsetFetchRequest.OffsetFetchRequestGroup()
        fetchGroup.groupId = "billing"
        fetchGroup.topics = nil
        var offsetFetch = OffsetFetchRequest()
        offsetFetch.groups = [fetchGroup]
        #expect(try await send(offsetFetch, version: 8, as: Self.bob).groups[0].errorCode == ErrorCode.groupAuthorizationFailed.rawValue)
        #expect(try await send(offsetFetch, version: 8, as: Self.alice).groups[0].topics.map(\.name) == ["orders"])

        var describe = DescribeGroupsRequest()
        describe.groups = ["billing"]
        describe.includeAuthorizedOperations = true
        #expect(try await send(describe, version: 5, as: Self.bob).groups[0].errorCode == ErrorCode.groupAuthorizationFailed.rawValue)
        let described = try await send(describe, version: 5, as: Self.alice).groups[0]
        #expect(described.authorizedOperations == (1 << Int32(AclOperation.read.rawValue) | 1 << Int32(AclOperation.describe.rawValue)))

        #expect(try await send(ListGroupsRequest(), version: 5, as: Self.bob).groups.isEmpty)
        #expect(try await send(ListGroupsRequest(), version: 5, as: Self.alice).groups.map(\.groupId) == ["billing"])

        var find = FindCoordinatorRequest()
        find.keyType = 0
        find.coordinatorKeys = ["billing"]
        #expect(try await send(find, version: 4, as: Self.bob).coordinators.map(\.errorCode) == [ErrorCode.groupAuthorizationFailed.rawValue])
        find.keyType = 1
        find.coordinatorKeys = ["app"]
        #expect(try await send(find, version: 4, as: Self.bob).coordinators.map(\.errorCode) == [ErrorCode.transactionalIdAuthorizationFailed.rawValue])

        var offsetDelete = OffsetDeleteRequest()
        offsetDelete.groupId = "billing"
        #expect(try await send(offsetDelete, version: 0, as: Self.alice).errorCode == ErrorCode.groupAuthorizationFailed.rawValue)
        var deleteGroups = DeleteGroupsRequest()
        deleteGroups.groupsNames = ["billing"]
        #expect(try await send(deleteGroups, version: 2, as: Self.alice).results.map(\.errorCode) == [ErrorCode.groupAuthorizationFailed.rawValue])
        #expect(harness.broker.groups.group("billing") != nil)
    }

    @Test func scramCredentialApisNeedClusterDescribeAndAlter() async throws {
        #expect(try await send(DescribeUserScramCredentialsRequest(), version: 0, as: Self.bob).errorCode == ErrorCode.clusterAuthorizationFailed.rawValue)
        var alter = AlterUserScramCredentialsRequest()
        var deletion = AlterUserScramCredentialsRequest.ScramCredentialDeletion()
        deletion.name = "alice"
        deletion.mechanism = 1
        alter.deletions = [deletion]
        #expect(try await send(alter, version: 0, as: Self.bob).results.map(\.errorCode) == [ErrorCode.clusterAuthorizationFailed.rawValue])
        #expect(try await send(DescribeUserScramCredentialsRequest(), version: 0, as: Self.admin).errorCode == 0)
    }

    @Test func clusterAuthorizedOperationsAreTheGrantedSet() async throws {
        var req = DescribeClusterRequest()
        req.includeClusterAuthorizedOperations = true
        #expect(try await send(req, version: 1, as: Self.bob).clusterAuthorizedOperations == 0)
        try await grant(Self.bob, .describe, .cluster, "kafka-cluster")
        #expect(try await send(req, version: 1, as: Self.bob).clusterAuthorizedOperations == 1 << Int32(AclOperation.describe.rawValue))
        let everything = AuthorizedOperations.cluster.reduce(Int32(0)) { $0 | 1 << Int32($1.rawValue) }
        #expect(try await send(req, version: 1, as: Self.admin).clusterAuthorizedOperations == everything)
    }
}

extension BrokerHarness {
    /// `send` on a connection authenticated as `principal`.
    fileprivate func send<R: KafkaRequest>(_ request: R, version: Int16, as principal: KafkaPrincipal) async throws -> R.Response {
        let session = AuthorizationRequestTests.session(principal)
        let future = try broker.handle(frame: Self.frame(request, version: version), eventLoop: eventLoop, session: session)
        var response = try #require(try await future.get())
        _ = response.readInteger(as: Int32.self)
        _ = try ResponseHeader(from: &response, version: KafkaHeaderVersions.response(apiKey: R.apiKey, apiVersion: version))
        return try R.Response(from: &response, version: version)
    }
}
