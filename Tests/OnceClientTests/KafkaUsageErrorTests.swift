import OnceClient
import Testing

/// Misuse is a thrown `KafkaUsageError`, checked before any network use: the bootstrap server
/// here (port 1 on loopback) is never listened on, and lazy construction never dials it.
@Suite struct KafkaUsageErrorTests {
    private let nowhere = [BootstrapServer(host: "127.0.0.1", port: 1)]

    private func producerError(_ change: (inout ProducerConfiguration) -> Void) -> KafkaUsageError.Kind? {
        var configuration = ProducerConfiguration(bootstrapServers: nowhere)
        change(&configuration)
        do {
            _ = try KafkaProducer(configuration: configuration)
            return nil
        } catch {
            return error.kind
        }
    }

    @Test func idempotenceWithAcksOtherThanAllIsRejected() {
        #expect(producerError { $0.acks = .leader } == .idempotenceNeedsAcksAll)
        #expect(producerError { $0.acks = .none } == .idempotenceNeedsAcksAll)
        #expect(producerError { $0.acks = .leader; $0.enableIdempotence = false; $0.transactionalId = "t" }
            == .idempotenceNeedsAcksAll)
    }

    @Test func acksOtherThanAllWithoutIdempotenceIsAllowed() {
        #expect(producerError { $0.acks = .leader; $0.enableIdempotence = false } == nil)
    }

    @Test func idempotenceAllowsOneToFiveInFlight() {
        #expect(producerError { $0.maxInFlightPerPartition = 6 } == .maxInFlightOutOfRange)
        #expect(producerError { $0.maxInFlightPerPartition = 0 } == .maxInFlightOutOfRange)
        #expect(producerError { $0.maxInFlightPerPartition = 1 } == nil)
        #expect(producerError { $0.maxInFlightPerPartition = 6; $0.enableIdempotence = false } == nil)
    }

    @Test func noBootstrapServerIsRejected() {
        #expect(producerError { $0.bootstrapServers = [] } == .noBootstrapServers)
        #expect(throws: KafkaUsageError(.noBootstrapServers, "at least one bootstrap server is required")) {
            try KafkaClient(bootstrapServers: [])
        }
    }

    private func consumer(groupId: String?) throws -> KafkaConsumer {
        var configuration = ConsumerConfiguration(bootstrapServers: nowhere)
        configuration.groupId = groupId
        return try KafkaConsumer(configuration: configuration)
    }

    @Test func subscribeWithoutAGroupIdThrows() async throws {
        let consumer = try consumer(groupId: nil)
        await #expect { try await consumer.subscribe(["t"]) } throws: {
            ($0 as? KafkaUsageError)?.kind == .subscribeWithoutGroupId
        }
        await consumer.close()
    }

    @Test func subscribeAfterAssignThrows() async throws {
        let consumer = try consumer(groupId: "g")
        try await consumer.assign([TopicPartition("t", 0)])
        await #expect { try await consumer.subscribe(["t"]) } throws: {
            ($0 as? KafkaUsageError)?.kind == .assignAndSubscribe
        }
        #expect(await consumer.assignment == [TopicPartition("t", 0)])
        await consumer.close()
    }

    @Test func assignAfterSubscribeThrows() async throws {
        let consumer = try consumer(groupId: "g")
        try await consumer.subscribe(["t"])
        await #expect { try await consumer.assign([TopicPartition("t", 0)]) } throws: {
            ($0 as? KafkaUsageError)?.kind == .assignAndSubscribe
        }
        await consumer.close()
    }

    @Test func seekOnAnUnassignedPartitionThrowsAndSeekOnAnAssignedOneMoves() async throws {
        let consumer = try consumer(groupId: nil)
        try await consumer.assign([TopicPartition("t", 0)])
        await #expect { try await consumer.seek(TopicPartition("t", 1), to: 5) } throws: {
            ($0 as? KafkaUsageError)?.kind == .partitionNotAssigned
        }
        try await consumer.seek(TopicPartition("t", 0), to: 5)
        #expect(await consumer.position(TopicPartition("t", 0)) == 5)
        await consumer.close()
    }
}
