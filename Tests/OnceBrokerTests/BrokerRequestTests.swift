import KafkaProtocol
import NIOCore
@testable import OnceBroker
import OnceStorage
import Testing

@Suite("Broker request handling")
struct BrokerRequestTests {
    @Test("ApiVersions advertises exactly the implemented ranges")
    func apiVersions() async throws {
        let h = BrokerHarness()
        for version in Int16(0)...3 {
            let response = try #require(try await h.send(ApiVersionsRequest(), version: version))
            #expect(response.errorCode == 0)
            let advertised = Dictionary(uniqueKeysWithValues: response.apiKeys.map { ($0.apiKey, $0.minVersion...$0.maxVersion) })
            #expect(advertised.count == SupportedApis.ranges.count)
            for (api, range) in SupportedApis.ranges {
                #expect(advertised[api.rawValue] == range)
                #expect(range.lowerBound >= api.validVersions.lowerBound)
                #expect(range.upperBound <= api.validVersions.upperBound)
            }
        }
    }

    @Test("an ApiVersions version the broker does not know gets UNSUPPORTED_VERSION in a v0 response")
    func apiVersionsTooNew() async throws {
        let h = BrokerHarness()
        var frame = ByteBufferAllocator().buffer(capacity: 32)
        var header = RequestHeader()
        header.requestApiKey = ApiVersionsRequest.apiKey
        header.requestApiVersion = 99
        header.correlationId = 42
        header.encode(into: &frame, version: 2)
        frame.writeInteger(UInt8(0))  // empty tagged fields of an unknown body
        var response = try #require(try await h.broker.handle(frame: frame, eventLoop: h.eventLoop).get())
        _ = response.readInteger(as: Int32.self)
        let responseHeader = try ResponseHeader(from: &response, version: 0)
        #expect(responseHeader.correlationId == 42)
        let body = try ApiVersionsResponse(from: &response, version: 0)
        #expect(body.errorCode == ErrorCode.unsupportedVersion.rawValue)
        #expect(body.apiKeys.contains { $0.apiKey == ApiVersionsRequest.apiKey && $0.maxVersion == 3 })
    }

    @Test("an API the broker does not serve closes the connection")
    func unknownApi() throws {
        let h = BrokerHarness()
        var frame = ByteBufferAllocator().buffer(capacity: 16)
        frame.writeInteger(Int16(999))
        frame.writeInteger(Int16(0))
        frame.writeInteger(Int32(1))
        frame.writeInteger(Int16(-1))
        #expect(throws: Broker.ConnectionError.self) { try h.broker.handle(frame: frame, eventLoop: h.eventLoop) }
        var truncated = ByteBufferAllocator().buffer(capacity: 2)
        truncated.writeInteger(Int16(0))
        #expect(throws: (any Error).self) { try h.broker.handle(frame: truncated, eventLoop: h.eventLoop) }
    }

    @Test("Metadata auto-creates a named topic and lists it with one leader")
    func metadataAutoCreate() async throws {
        let h = BrokerHarness { $0.defaultPartitions = 3 }
        var req = MetadataRequest()
        var topic = MetadataRequest.MetadataRequestTopic()
        topic.name = "orders"
        req.topics = [topic]
        for version: Int16 in [1, 9, 12] {
            let response = try #require(try await h.send(req, version: version))
            #expect(response.brokers.map(\.nodeId) == [1])
            #expect(response.brokers.first?.port == 9092)
            #expect(response.topics.count == 1)
            #expect(response.topics[0].errorCode == 0)
            #expect(response.topics[0].partitions.map(\.partitionIndex) == [0, 1, 2])
            #expect(response.topics[0].partitions.allSatisfy { $0.leaderId == 1 && $0.isrNodes == [1] })
        }
        // v1+: null topics means all of them.
        req.topics = nil
        let all = try #require(try await h.send(req, version: 12))
        #expect(all.topics.filter { !$0.isInternal }.map(\.name) == ["orders"])
        #expect(all.topics.filter(\.isInternal).compactMap(\.name).allSatisfy { $0.hasPrefix("__") })
    }

    @Test("Metadata without auto-creation answers UNKNOWN_TOPIC_OR_PARTITION")
    func metadataUnknownTopic() async throws {
        let h = BrokerHarness { $0.autoCreateTopics = false }
        var req = MetadataRequest()
        var topic = MetadataRequest.MetadataRequestTopic()
        topic.name = "missing"
        req.topics = [topic]
        let response = try #require(try await h.send(req, version: 9))
        #expect(response.topics[0].errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
        #expect(h.storage.topic(named: "missing") == nil)
    }

    @Test("produce then fetch returns the records with consecutive offsets")
    func produceFetch() async throws {
        let h = BrokerHarness()
        let first = try await h.produce(topic: "t", values: ["a", "b", "c"])
        #expect(first.errorCode == 0)
        #expect(first.baseOffset == 0)
        let second = try await h.produce(topic: "t", values: ["d", "e"])
        #expect(second.baseOffset == 3)
        let fetched = try await h.fetch(topic: "t", offset: 0)
        #expect(fetched.errorCode == 0)
        #expect(fetched.highWatermark == 5)
        #expect(fetched.lastStableOffset == 5)
        let values = try BrokerHarness.values(fetched.records)
        #expect(values.map(\.offset) == [0, 1, 2, 3, 4])
        #expect(values.map(\.value) == ["a", "b", "c", "d", "e"])
        // From the middle of a batch: the whole batch comes back; the client skips what it passed.
        let middle = try BrokerHarness.values(try await h.fetch(topic: "t", offset: 4).records)
        #expect(middle.map(\.value) == ["d", "e"])
    }

    @Test("acks=0 produces without a response")
    func acksZero() async throws {
        let h = BrokerHarness()
        let response = try await h.produce(topic: "t", records: BrokerHarness.batch(["x"]), acks: 0)
        #expect(response == nil)
        #expect(h.storage.partition(topic: "t", partition: 0)?.logEndOffset == 1)
    }

    @Test("bad produce input gets the Kafka error a client expects")
    func produceErrors() async throws {
        let h = BrokerHarness { $0.autoCreateTopics = false }
        try h.storage.createTopic(name: "t", partitions: 1, configs: ["max.message.bytes": "200"])

        var corrupt = BrokerHarness.batch(["hello"])
        let last = corrupt.writerIndex - 1
        corrupt.setInteger(corrupt.getInteger(at: last, as: UInt8.self)! ^ 0xFF, at: last)
        #expect(try await h.produce(topic: "t", records: corrupt)?.errorCode == ErrorCode.corruptMessage.rawValue)

        let big = BrokerHarness.batch([String(repeating: "x", count: 500)])
        #expect(try await h.produce(topic: "t", records: big)?.errorCode == ErrorCode.messageTooLarge.rawValue)

        #expect(try await h.produce(topic: "t", partition: 5, records: BrokerHarness.batch(["x"]))?.errorCode
            == ErrorCode.unknownTopicOrPartition.rawValue)
        #expect(try await h.produce(topic: "nope", records: BrokerHarness.batch(["x"]))?.errorCode
            == ErrorCode.unknownTopicOrPartition.rawValue)
        #expect(try await h.produce(topic: "t", records: BrokerHarness.batch(["x"]), acks: 2)?.errorCode
            == ErrorCode.invalidRequiredAcks.rawValue)
        #expect(try await h.produce(topic: "t", records: nil)?.errorCode == ErrorCode.invalidRecord.rawValue)
        #expect(h.storage.partition(topic: "t", partition: 0)?.logEndOffset == 0, "nothing was appended")
    }

    @Test("LogAppendTime topics stamp the broker's time into the batch")
    func logAppendTime() async throws {
        let h = BrokerHarness()
        try h.storage.createTopic(name: "t", partitions: 1, configs: ["message.timestamp.type": "LogAppendTime"])
        let before = Clock.nowMilliseconds()
        let produced = try await h.produce(topic: "t", values: ["a"], timestamp: 1000)
        #expect(produced.logAppendTimeMs >= before)
        let fetched = try await h.fetch(topic: "t", offset: 0)
        let records = try #require(fetched.records)
        let batch = try #require(try RecordBatch.decodeAll(from: records).first)
        #expect(batch.header.timestampType == .logAppendTime)
        #expect(batch.header.maxTimestamp == produced.logAppendTimeMs)
    }

    @Test("fetching outside the log is OFFSET_OUT_OF_RANGE; at the end it is empty")
    func fetchOutOfRange() async throws {
        let h = BrokerHarness()
        _ = try await h.produce(topic: "t", values: ["a"])
        let outOfRange = try await h.fetch(topic: "t", offset: 5)
        #expect(outOfRange.errorCode == ErrorCode.offsetOutOfRange.rawValue)
        #expect(outOfRange.records?.readableBytes == 0, "an empty record set, not null, which librdkafka cannot parse")
        #expect(try await h.fetch(topic: "t", offset: -1).errorCode == ErrorCode.offsetOutOfRange.rawValue)
        let atEnd = try await h.fetch(topic: "t", offset: 1)
        #expect(atEnd.errorCode == 0)
        #expect((atEnd.records?.readableBytes ?? 0) == 0)
        #expect(try await h.fetch(topic: "missing", offset: 0).errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
    }

    @Test("read_committed fetch lists no aborted transactions and stops at the stable offset")
    func fetchReadCommitted() async throws {
        let h = BrokerHarness()
        _ = try await h.produce(topic: "t", values: ["a", "b"])
        let fetched = try await h.fetch(topic: "t", offset: 0, isolation: 1)
        #expect(fetched.abortedTransactions == [])
        #expect(fetched.lastStableOffset == 2)
        #expect(try BrokerHarness.values(fetched.records).count == 2)
        let uncommitted = try await h.fetch(topic: "t", offset: 0, isolation: 0)
        #expect(uncommitted.abortedTransactions == nil)
    }

    @Test("a long-polling fetch wakes when data arrives")
    func fetchLongPoll() async throws {
        let h = BrokerHarness()
        _ = try await h.produce(topic: "t", values: ["a"])
        async let parked = h.fetch(topic: "t", offset: 1, maxWaitMs: 10_000)
        try await Task.sleep(for: .milliseconds(100))
        _ = try await h.produce(topic: "t", values: ["b"])
        let woken = try await parked
        #expect(try BrokerHarness.values(woken.records).map(\.value) == ["b"])
    }

    @Test("a long-polling fetch returns empty when its wait runs out")
    func fetchTimeout() async throws {
        let h = BrokerHarness()
        _ = try await h.produce(topic: "t", values: ["a"])
        let empty = try await h.fetch(topic: "t", offset: 1, maxWaitMs: 50)
        #expect(empty.errorCode == 0)
        #expect((empty.records?.readableBytes ?? 0) == 0)
    }

    @Test("fetch sessions are declined with session id 0")
    func fetchSessions() async throws {
        let h = BrokerHarness()
        var req = FetchRequest()
        req.sessionId = 0
        req.sessionEpoch = 0
        let response = try #require(try await h.send(req, version: 12))
        #expect(response.sessionId == 0)
        #expect(response.errorCode == 0)
        req.sessionId = 1234
        req.sessionEpoch = 3
        let unknown = try #require(try await h.send(req, version: 12))
        #expect(unknown.errorCode == ErrorCode.fetchSessionIdNotFound.rawValue)
    }

    @Test("ListOffsets answers earliest, latest, max timestamp and by timestamp")
    func listOffsets() async throws {
        let h = BrokerHarness()
        _ = try await h.produce(topic: "t", values: ["a", "b"], timestamp: 1000)  // offsets 0-1, ts 1000-1001
        _ = try await h.produce(topic: "t", values: ["c", "d"], timestamp: 5000)  // offsets 2-3, ts 5000-5001
        func lookup(_ timestamp: Int64, version: Int16 = 7) async throws -> ListOffsetsResponse.ListOffsetsPartitionResponse {
            var p = ListOffsetsRequest.ListOffsetsPartition()
            p.partitionIndex = 0
            p.timestamp = timestamp
            var t = ListOffsetsRequest.ListOffsetsTopic()
            t.name = "t"
            t.partitions = [p]
            var req = ListOffsetsRequest()
            req.replicaId = -1
            req.topics = [t]
            return try #require(try await h.send(req, version: version)).topics[0].partitions[0]
        }
        #expect(try await lookup(-2).offset == 0)
        #expect(try await lookup(-1).offset == 4)
        #expect(try await lookup(-1, version: 1).offset == 4)
        let max = try await lookup(-3)
        // Record-level answers: the record holding the max timestamp, the first record at or after.
        #expect(max.timestamp == 5001)
        #expect(max.offset == 3)
        let byTime = try await lookup(3000)
        #expect(byTime.offset == 2)
        #expect(byTime.timestamp == 5000)
        let inside = try await lookup(5001)
        #expect(inside.offset == 3)
        #expect(inside.timestamp == 5001)
        #expect(try await lookup(1000).offset == 0)
        #expect(try await lookup(9000).offset == -1)
    }

    @Test("CreateTopics creates, and refuses what Kafka refuses")
    func createTopics() async throws {
        let h = BrokerHarness()
        func create(_ name: String, partitions: Int32 = 3, rf: Int16 = 1, configs: [String: String] = [:], validateOnly: Bool = false)
            async throws -> CreateTopicsResponse.CreatableTopicResult
        {
            var t = CreateTopicsRequest.CreatableTopic()
            t.name = name
            t.numPartitions = partitions
            t.replicationFactor = rf
            t.configs = configs.map { var c = CreateTopicsRequest.CreatableTopicConfig(); c.name = $0.key; c.value = $0.value; return c }
            var req = CreateTopicsRequest()
            req.topics = [t]
            req.validateOnly = validateOnly
            return try #require(try await h.send(req, version: 7)).topics[0]
        }
        let ok = try await create("payments", configs: ["retention.ms": "1000"])
        #expect(ok.errorCode == 0)
        #expect(ok.numPartitions == 3)
        #expect(ok.topicId == h.storage.topic(named: "payments")?.id)
        #expect(ok.configs?.contains { $0.name == "retention.ms" && $0.value == "1000" } == true)
        #expect(try await create("payments").errorCode == ErrorCode.topicAlreadyExists.rawValue)
        #expect(try await create("zero", partitions: 0).errorCode == ErrorCode.invalidPartitions.rawValue)
        #expect(try await create("rf", rf: 3).errorCode == ErrorCode.invalidReplicationFactor.rawValue)
        #expect(try await create("bad/name").errorCode == ErrorCode.invalidTopicException.rawValue)
        #expect(try await create("cfg", configs: ["no.such.config": "1"]).errorCode == ErrorCode.invalidConfig.rawValue)
        #expect(try await create("dry", validateOnly: true).errorCode == 0)
        #expect(h.storage.topic(named: "dry") == nil)
        #expect(try await create("dflt", partitions: -1, rf: -1).numPartitions == 1)
    }

    @Test("DeleteTopics removes a topic by name or id")
    func deleteTopics() async throws {
        let h = BrokerHarness()
        try h.storage.createTopic(name: "a", partitions: 1, configs: [:])
        let b = try h.storage.createTopic(name: "b", partitions: 1, configs: [:])
        var byName = DeleteTopicsRequest()
        byName.topicNames = ["a", "missing"]
        let r1 = try #require(try await h.send(byName, version: 5))
        #expect(r1.responses.map(\.errorCode) == [0, ErrorCode.unknownTopicOrPartition.rawValue])
        var byId = DeleteTopicsRequest()
        var state = DeleteTopicsRequest.DeleteTopicState()
        state.topicId = b.id
        byId.topics = [state]
        let r2 = try #require(try await h.send(byId, version: 6))
        #expect(r2.responses.first?.errorCode == 0)
        #expect(r2.responses.first?.name == "b")
        #expect(h.storage.topics().filter { !InternalTopics.names.contains($0.name) }.isEmpty)
    }

    @Test("DescribeConfigs shows topic overrides and defaults, and broker settings")
    func describeConfigs() async throws {
        let h = BrokerHarness()
        try h.storage.createTopic(name: "t", partitions: 1, configs: ["retention.ms": "1234"])
        var topic = DescribeConfigsRequest.DescribeConfigsResource()
        topic.resourceType = 2
        topic.resourceName = "t"
        topic.configurationKeys = nil
        var broker = DescribeConfigsRequest.DescribeConfigsResource()
        broker.resourceType = 4
        broker.resourceName = "1"
        var missing = DescribeConfigsRequest.DescribeConfigsResource()
        missing.resourceType = 2
        missing.resourceName = "missing"
        var req = DescribeConfigsRequest()
        req.resources = [topic, broker, missing]
        let response = try #require(try await h.send(req, version: 4))
        let retention = response.results[0].configs.first { $0.name == "retention.ms" }
        #expect(retention?.value == "1234")
        #expect(retention?.configSource == ConfigSource.topicConfig)
        let segment = response.results[0].configs.first { $0.name == "segment.bytes" }
        #expect(segment?.configSource == ConfigSource.defaultConfig)
        #expect(response.results[1].configs.contains { $0.name == "broker.id" && $0.value == "1" })
        #expect(response.results[2].errorCode == ErrorCode.unknownTopicOrPartition.rawValue)
    }

    @Test("DescribeCluster names this broker as the controller")
    func describeCluster() async throws {
        let h = BrokerHarness { $0.listeners[0].advertised = HostPort(host: "proxy.local", port: 19092) }
        let response = try #require(try await h.send(DescribeClusterRequest(), version: 1))
        #expect(response.clusterId == "test-cluster")
        #expect(response.controllerId == 1)
        #expect(response.brokers.map(\.host) == ["proxy.local"])
        #expect(response.brokers.map(\.port) == [19092])
    }
}
