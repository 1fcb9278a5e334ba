import Logging
import OnceClient
import ServiceLifecycle

/// Settings for `IdempotentConsumer`.
public struct IdempotentConsumerConfiguration: Sendable {
    /// The consumer underneath. `groupId` is required; auto-commit is turned off (offsets are
    /// committed after the store commits). Default isolation: read_committed; reset: earliest.
    public var consumer: ConsumerConfiguration
    public var topics: [String]
    /// Default: the `event-id` header.
    public var eventId: EventIdSource = .header("event-id")
    /// Records per store transaction at most. Default: 500.
    public var maxBatch = 500
    /// How long to wait for the first record of a batch before checking for shutdown. Default: 200 ms.
    public var pollInterval: Duration = .milliseconds(200)

    public init(bootstrapServers: [BootstrapServer], groupId: String, topics: [String]) {
        consumer = ConsumerConfiguration(bootstrapServers: bootstrapServers)
        consumer.groupId = groupId
        consumer.isolationLevel = .readCommitted
        consumer.autoOffsetReset = .earliest
        self.topics = topics
    }
}

/// The dedup road to exactly-once (`DeliverySemantics.exactlyOnceDeduplicated`): every batch
/// of records goes through the store, which applies the handler's effect only for event ids
/// it has not seen and records ids, effect and offsets in one transaction. Kafka offsets are
/// committed afterwards and only ever lag the store, so a crash at any point leads to
/// redelivery, which the store absorbs.
public final class IdempotentConsumer<Store: DedupStore>: Service, Sendable {
    public typealias Handler = @Sendable (DedupEvent, Store.Transaction) async throws -> Void

    public let configuration: IdempotentConsumerConfiguration
    public let store: Store
    private let handler: Handler
    private let logger: Logger
    private let onBatch: @Sendable (_ applied: Int, _ duplicates: Int, _ missingId: Int) -> Void

    /// - Parameters:
    ///   - onBatch: told after every committed batch how many events were applied, skipped as
    ///     duplicates, or skipped for lack of an event id.
    public init(
        configuration: IdempotentConsumerConfiguration, store: Store, logger: Logger = Logger(label: "once.streams.dedup"),
        onBatch: @escaping @Sendable (_ applied: Int, _ duplicates: Int, _ missingId: Int) -> Void = { _, _, _ in },
        handler: @escaping Handler
    ) {
        precondition(configuration.consumer.groupId != nil, "IdempotentConsumer needs a consumer group")
        self.configuration = configuration
        self.store = store
        self.handler = handler
        self.logger = logger
        self.onBatch = onBatch
    }

    /// Consumes until cancelled or a graceful shutdown, then commits and leaves the group. The
    /// consumer rides out rebalances and coordinator moves itself; an error it gives up on
    /// starts a new consumer, and the store makes the redelivery that follows harmless.
    public func run() async throws {
        while !Task.isCancelled, !Task.isShuttingDownGracefully {
            do {
                try await session()
            } catch let error as KafkaError {
                logger.warning("consumer failed, starting a new one", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .milliseconds(200))
            } catch let error as KafkaClientError {
                logger.warning("consumer failed, starting a new one", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .milliseconds(200))
            }
        }
    }

    private func session() async throws {
        var consumerConfiguration = configuration.consumer
        consumerConfiguration.enableAutoCommit = false
        let group = consumerConfiguration.groupId!
        let consumer = try await KafkaConsumer.connect(configuration: consumerConfiguration, logger: logger)
        try await consumer.subscribe(configuration.topics)
        var pending: ArraySlice<ConsumerRecord> = []
        do {
            while !Task.isCancelled, !Task.isShuttingDownGracefully {
                if pending.isEmpty {
                    do {
                        pending = try await consumer.poll(timeout: configuration.pollInterval)[...]
                    } catch where Task.isCancelled {
                        break
                    }
                }
                guard !pending.isEmpty else { continue }
                let items = pending.prefix(configuration.maxBatch)
                pending = pending.dropFirst(items.count)
                var events: [DedupEvent] = []
                var missingId = 0
                for record in items {
                    if let id = configuration.eventId.eventId(of: record) {
                        events.append(DedupEvent(id: id, record: record))
                    } else {
                        missingId += 1
                        logger.warning("record without an event id skipped: \(record.topicPartition)@\(record.offset)")
                    }
                }
                let handler = handler
                let applied = try await store.process(events, group: group) { event, transaction in
                    try await handler(event, transaction)
                }
                // Offsets of id-less records are committed too: skipping them is final.
                var next: [TopicPartition: Int64] = [:]
                for record in items { next[record.topicPartition] = max(next[record.topicPartition] ?? 0, record.offset + 1) }
                do {
                    try await consumer.commit(next)
                } catch {
                    // Harmless: the store already holds the ids, so the redelivery is skipped.
                    logger.debug("offset commit failed after the store committed", metadata: ["error": "\(error)"])
                }
                onBatch(applied, events.count - applied, missingId)
            }
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
    }
}
