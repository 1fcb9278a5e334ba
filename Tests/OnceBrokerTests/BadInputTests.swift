import KafkaProtocol
import Logging
import NIOCore
@testable import OnceBroker
import OnceStorage
import Testing

/// Input Kafka refuses and that once went through: poison batches, keyless records on compacted
/// topics, deleting the coordinators' topics, and CreateTopics past the partition limits.
@Suite("Bad input")
struct BadInputTests {
    /// Four records whose CRC is right but whose last record is cut short by two bytes.
    static func poisonBatch() -> ByteBuffer {
        let whole = BrokerHarness.batch(["a", "b", "c", "d"])
        var section = Array(whole.readableBytesView.dropFirst(RecordBatchHeader.size))
        section.removeLast(2)
        var header = try! RecordBatchHeader(reading: whole, at: 0)
        header.batchLength = Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead + section.count)
        var buffer = ByteBuffer()
        header.write(into: &buffer)
        buffer.writeBytes(section)
        let crc = CRC32C.checksum(buffer.readableBytesView.dropFirst(21))
        buffer.setInteger(crc, at: 17)
        return buffer
    }

    @Test("a poison batch is INVALID_RECORD with the bad record's index, and nothing is stored")
    func poisonBatch() async throws {
        let h = BrokerHarness()
        try h.storage.createTopic(name: "t", partitions: 1, configs: [:])
        for acks: Int16 in [1, -1] {
            let answer = try #require(try await h.produce(topic: "t", records: Self.poisonBatch(), acks: acks))
            #expect(answer.errorCode == ErrorCode.invalidRecord.rawValue)
            #expect(answer.recordErrors.map(\.batchIndex) == [3])
            #expect(answer.errorMessage != nil)
        }
        #expect(h.storage.partition(topic: "t", partition: 0)?.logEndOffset == 0)
        #expect(try await h.produce(topic: "t", values: ["fine"]).errorCode == 0)
    }

    @Test("a compacted topic refuses keyless records with per-record errors")
    func keylessOnCompacted() async throws {
        let h = BrokerHarness()
        try h.storage.createTopic(name: "c", partitions: 1, configs: ["cleanup.policy": "compact,delete"])
        let keyless = try #require(try await h.produce(topic: "c", records: BrokerHarness.batch(["x", "y"])))
        #expect(keyless.errorCode == ErrorCode.invalidRecord.rawValue)
        #expect(keyless.recordErrors.map(\.batchIndex) == [0, 1])
        let keyed = try #require(try await h.produce(topic: "c", records: BrokerHarness.batch(["x"], keys: ["k"])))
        #expect(keyed.errorCode == 0)
        #expect(h.storage.partition(topic: "c", partition: 0)?.logEndOffset == 1)
    }

    @Test("the internal topics cannot be deleted")
    func internalTopics() async throws {
        let h = BrokerHarness()
        _ = try InternalTopics.log(InternalTopics.transactionState, in: h.storage, logger: Logger(label: "test"))
        try h.storage.createTopic(name: "plain", partitions: 1, configs: [:])
        var req = DeleteTopicsRequest()
        req.topicNames = [InternalTopics.transactionState, "plain"]
        let response = try #require(try await h.send(req, version: 5))
        #expect(response.responses.map(\.errorCode) == [ErrorCode.invalidTopicException.rawValue, 0])
        #expect(h.storage.topic(named: InternalTopics.transactionState) != nil)
        #expect(h.storage.topic(named: "plain") == nil)
    }

    private func create(_ h: BrokerHarness, _ topics: [(String, Int32)]) async throws -> [Int16] {
        var req = CreateTopicsRequest()
        req.topics = topics.map { name, partitions in
            var t = CreateTopicsRequest.CreatableTopic()
            t.name = name
            t.numPartitions = partitions
            t.replicationFactor = 1
            return t
        }
        return try #require(try await h.send(req, version: 7)).topics.map(\.errorCode)
    }

    @Test("CreateTopics past the per-request limit fails whole; past the broker limit, per topic")
    func partitionLimits() async throws {
        let h = BrokerHarness {
            $0.maxPartitionsPerRequest = 10
            $0.maxPartitions = 15
        }
        // The coordinators' own topics count too; the limits below leave room for up to two.
        func userTopics() -> [String] { h.storage.topics().map(\.name).filter { !InternalTopics.names.contains($0) } }
        let internalPartitions = h.storage.topics().reduce(0) { $0 + Int($1.partitionCount) }
        try #require(internalPartitions <= 2)
        let violation = ErrorCode.policyViolation.rawValue
        #expect(try await create(h, [("a", 6), ("b", 6)]) == [violation, violation])
        #expect(userTopics().isEmpty)
        #expect(try await create(h, [("a", 6), ("b", 4)]) == [0, 0])
        #expect(try await create(h, [("c", 3), ("d", 3)]) == [0, violation])
        #expect(userTopics() == ["a", "b", "c"])
    }
}
