import KafkaProtocol
import NIOCore
@testable import OnceBroker
import OnceStorage
import Testing

/// CreatePartitions, the config APIs, DeleteRecords and DescribeLogDirs through `Broker.handle`.
@Suite("Admin request handling")
struct AdminRequestTests {
    func createTopic(_ h: BrokerHarness, _ name: String, partitions: Int32 = 1, configs: [String: String] = [:]) throws {
        try h.storage.createTopic(name: name, partitions: partitions, configs: configs)
    }

    func createPartitions(_ h: BrokerHarness, _ topics: [(String, Int32, [[Int32]]?)], validateOnly: Bool = false) async throws
        -> [String: (Int16, String?)]
    {
        var req = CreatePartitionsRequest()
        req.validateOnly = validateOnly
        req.topics = topics.map { name, count, assignments in
            var t = CreatePartitionsRequest.CreatePartitionsTopic()
            t.name = name
            t.count = count
            t.assignments = assignments.map { lists in
                lists.map {
                    var a = CreatePartitionsRequest.CreatePartitionsAssignment()
                    a.brokerIds = $0
                    return a
                }
            }
            return t
        }
        let response = try #require(try await h.send(req, version: 3))
        return Dictionary(uniqueKeysWithValues: response.results.map { ($0.name, ($0.errorCode, $0.errorMessage)) })
    }

    @Test("CreatePartitions grows a topic and answers Kafka's codes and messages for the rest")
    func createPartitions() async throws {
        let h = BrokerHarness()
        try createTopic(h, "t", partitions: 2)
        try createTopic(h, "u")
        let refused = try await createPartitions(h, [("t", 2, nil), ("u", 0, nil), ("nope", 3, nil), ("t", 9, nil)])
        // t is named twice: refused once as a duplicate, and left alone.
        #expect(refused["t"]?.0 == ErrorCode.invalidRequest.rawValue && refused["t"]?.1 == "Duplicate topic name.")
        #expect(refused["u"]?.0 == ErrorCode.invalidPartitions.rawValue)
        #expect(refused["u"]?.1 == "The topic u currently has 1 partition(s); 0 would not be an increase.")
        #expect(refused["nope"]?.0 == ErrorCode.unknownTopicOrPartition.rawValue)
        #expect(h.storage.topic(named: "t")?.partitionCount == 2)

        let same = try await createPartitions(h, [("t", 2, nil)])
        #expect(same["t"]?.0 == ErrorCode.invalidPartitions.rawValue && same["t"]?.1 == "Topic already has 2 partition(s).")
        let assignments = try await createPartitions(h, [("t", 4, [[1]]), ("u", 2, [[2]])])
        #expect(assignments["t"]?.1 == "Attempted to add 2 additional partition(s), but only 1 assignment(s) were specified.")
        #expect(assignments["u"]?.1 == "The manual partition assignment includes broker 2, but no such broker is registered.")
        #expect(assignments.values.allSatisfy { $0.0 == ErrorCode.invalidReplicaAssignment.rawValue })

        #expect(try await createPartitions(h, [("t", 5, nil)], validateOnly: true)["t"]?.0 == 0)
        #expect(h.storage.topic(named: "t")?.partitionCount == 2)
        #expect(try await createPartitions(h, [("t", 4, [[1], [1]])])["t"]?.0 == 0)
        #expect(h.storage.topic(named: "t")?.partitionCount == 4)
        let produced = try await h.produce(topic: "t", partition: 3, values: ["new"])
        #expect(produced.errorCode == 0 && produced.baseOffset == 0)
    }

    func incremental(_ h: BrokerHarness, type: Int8, name: String, _ ops: [(String, Int8, String?)]) async throws -> (Int16, String?) {
        var resource = IncrementalAlterConfigsRequest.AlterConfigsResource()
        resource.resourceType = type
        resource.resourceName = name
        resource.configs = ops.map { name, op, value in
            var c = IncrementalAlterConfigsRequest.AlterableConfig()
            c.name = name
            c.configOperation = op
            c.value = value
            return c
        }
        var req = IncrementalAlterConfigsRequest()
        req.resources = [resource]
        let response = try #require(try await h.send(req, version: 1))
        return (response.responses[0].errorCode, response.responses[0].errorMessage)
    }

    @Test("IncrementalAlterConfigs sets, deletes, appends to and subtracts from a topic's overrides")
    func incrementalTopicConfigs() async throws {
        let h = BrokerHarness()
        try createTopic(h, "t", configs: ["retention.ms": "1000"])
        let topic = ConfigResourceType.topic
        #expect(try await incremental(h, type: topic, name: "t", [
            ("compression.type", 0, "gzip"), ("retention.ms", 1, nil), ("cleanup.policy", 2, "compact"),
        ]).0 == 0)
        #expect(h.storage.topic(named: "t")?.configs == ["compression.type": "gzip", "cleanup.policy": "delete,compact"])
        #expect(try await incremental(h, type: topic, name: "t", [("cleanup.policy", 3, "delete")]).0 == 0)
        #expect(h.storage.topic(named: "t")?.configs["cleanup.policy"] == "compact")

        let notList = try await incremental(h, type: topic, name: "t", [("segment.ms", 2, "1")])
        #expect(notList == (ErrorCode.invalidConfig.rawValue, "Can't APPEND to key segment.ms because its type is not LIST."))
        let unknown = try await incremental(h, type: topic, name: "t", [("no.such", 0, "1")])
        #expect(unknown == (ErrorCode.invalidConfig.rawValue, "Unknown topic config name: no.such"))
        let duplicate = try await incremental(h, type: topic, name: "t", [("flush.ms", 0, "1"), ("flush.ms", 0, "2")])
        #expect(duplicate.0 == ErrorCode.invalidRequest.rawValue)
        let badOp = try await incremental(h, type: topic, name: "t", [("flush.ms", 9, "1")])
        #expect(badOp.0 == ErrorCode.invalidRequest.rawValue)
        #expect(try await incremental(h, type: topic, name: "missing", [("flush.ms", 0, "1")]).0
            == ErrorCode.unknownTopicOrPartition.rawValue)
        #expect(h.storage.topic(named: "t")?.configs == ["compression.type": "gzip", "cleanup.policy": "compact"])
    }

    @Test("group and broker configs are validated and kept in the broker's state document")
    func groupAndBrokerConfigs() async throws {
        let storage = MemoryLogStorage()
        let h = BrokerHarness(storage: storage)
        let group = ConfigResourceType.group
        #expect(try await incremental(h, type: group, name: "g", [("consumer.heartbeat.interval.ms", 0, "6000")]).0 == 0)
        let low = try await incremental(h, type: group, name: "g", [("consumer.heartbeat.interval.ms", 0, "100")])
        #expect(low.0 == ErrorCode.invalidConfig.rawValue)
        #expect(try await incremental(h, type: group, name: "g", [("unknown.group.config", 0, "1")]).0
            == ErrorCode.invalidConfig.rawValue)
        let broker = ConfigResourceType.broker
        #expect(try await incremental(h, type: broker, name: "1", [("log.retention.ms", 0, "1000")]).0 == 0)
        // APPEND starts from Kafka's default when nothing is set.
        #expect(try await incremental(h, type: broker, name: "1", [("log.cleanup.policy", 2, "compact")]).0 == 0)
        #expect(try await incremental(h, type: broker, name: "1", [("listeners", 0, "PLAINTEXT://x:1")]).0
            == ErrorCode.invalidRequest.rawValue)
        #expect(try await incremental(h, type: broker, name: "7", [("log.retention.ms", 0, "1")]).0
            == ErrorCode.invalidRequest.rawValue)

        // A new broker on the same storage (a restart) reports what was set.
        let restarted = BrokerHarness(storage: storage)
        var describe = DescribeConfigsRequest()
        for (type, name) in [(group, "g"), (broker, "1")] {
            var r = DescribeConfigsRequest.DescribeConfigsResource()
            r.resourceType = type
            r.resourceName = name
            r.configurationKeys = nil
            describe.resources.append(r)
        }
        let response = try #require(try await restarted.send(describe, version: 4))
        let groupRows = Dictionary(uniqueKeysWithValues: response.results[0].configs.map { ($0.name, $0) })
        #expect(groupRows["consumer.heartbeat.interval.ms"]?.value == "6000")
        #expect(groupRows["consumer.heartbeat.interval.ms"]?.configSource == ConfigSource.groupConfig)
        #expect(groupRows["consumer.session.timeout.ms"]?.configSource == ConfigSource.defaultConfig)
        let brokerRows = Dictionary(uniqueKeysWithValues: response.results[1].configs.map { ($0.name, $0) })
        #expect(brokerRows["log.retention.ms"]?.value == "1000")
        #expect(brokerRows["log.retention.ms"]?.configSource == ConfigSource.dynamicBroker)
        #expect(brokerRows["listeners"]?.readOnly == true)
        #expect(brokerRows["log.cleanup.policy"]?.value == "delete,compact")
        #expect(brokerRows["background.threads"]?.value == "10" && brokerRows["background.threads"]?.configSource == ConfigSource.defaultConfig)
    }

    @Test("DeleteRecords advances the log start with Kafka's checks")
    func deleteRecords() async throws {
        let h = BrokerHarness()
        try createTopic(h, "t")
        try createTopic(h, "compacted", configs: ["cleanup.policy": "compact"])
        for _ in 0..<3 { _ = try await h.produce(topic: "t", values: ["a", "b"]) }
        func delete(_ topic: String, _ partition: Int32, _ offset: Int64) async throws -> (Int16, Int64) {
            var p = DeleteRecordsRequest.DeleteRecordsPartition()
            p.partitionIndex = partition
            p.offset = offset
            var t = DeleteRecordsRequest.DeleteRecordsTopic()
            t.name = topic
            t.partitions = [p]
            var req = DeleteRecordsRequest()
            req.topics = [t]
            let result = try #require(try await h.send(req, version: 2)).topics[0].partitions[0]
            return (result.errorCode, result.lowWatermark)
        }
        #expect(try await delete("t", 0, 3) == (0, 3))
        #expect(h.storage.partition(topic: "t", partition: 0)?.logStartOffset == 3)
        #expect(try await delete("t", 0, 1) == (0, 3))
        #expect(try await delete("t", 0, 7) == (ErrorCode.offsetOutOfRange.rawValue, -1))
        #expect(try await delete("t", 0, -5) == (ErrorCode.offsetOutOfRange.rawValue, -1))
        #expect(try await delete("t", 1, 0) == (ErrorCode.unknownTopicOrPartition.rawValue, -1))
        #expect(try await delete("compacted", 0, 0) == (ErrorCode.policyViolation.rawValue, -1))
        #expect(try await delete("__consumer_offsets", 0, 0) == (ErrorCode.invalidTopicException.rawValue, -1))
        #expect(try await delete("t", 0, -1) == (0, 6))
    }

    @Test("Metadata and DescribeCluster report authorized operations only when asked")
    func authorizedOperations() async throws {
        let h = BrokerHarness()
        try createTopic(h, "t")
        var meta = MetadataRequest()
        meta.topics = nil
        meta.includeTopicAuthorizedOperations = true
        let answer = try #require(try await h.send(meta, version: 12))
        // READ..ALTER_CONFIGS except CLUSTER_ACTION: bits 3-8, 10, 11.
        #expect(answer.topics.first { $0.name == "t" }?.topicAuthorizedOperations == 0b1101_1111_1000)
        meta.includeTopicAuthorizedOperations = false
        #expect(try #require(try await h.send(meta, version: 12)).topics.first?.topicAuthorizedOperations == Int32.min)
        var cluster = DescribeClusterRequest()
        cluster.includeClusterAuthorizedOperations = true
        // CREATE, ALTER, DESCRIBE, CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
        #expect(try #require(try await h.send(cluster, version: 1)).clusterAuthorizedOperations == 0b1_1111_1010_0000)
    }

    @Test("DescribeLogDirs reports each partition's stored bytes")
    func describeLogDirs() async throws {
        let h = BrokerHarness()
        try createTopic(h, "t", partitions: 2)
        _ = try await h.produce(topic: "t", values: ["x", "y"])
        var req = DescribeLogDirsRequest()
        var topic = DescribeLogDirsRequest.DescribableLogDirTopic()
        topic.topic = "t"
        topic.partitions = [0, 1]
        req.topics = [topic]
        let response = try #require(try await h.send(req, version: 4))
        let partitions = response.results[0].topics[0].partitions
        #expect(partitions.map(\.partitionIndex) == [0, 1])
        #expect(partitions[0].partitionSize == Int64(h.storage.partition(topic: "t", partition: 0)!.sizeInBytes))
        #expect(partitions[0].partitionSize > 0 && partitions[1].partitionSize == 0)
    }
}
