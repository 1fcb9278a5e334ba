import KafkaProtocol
import Logging
import OnceClient
import ServiceLifecycle

/// Read-process-write with Kafka transactions (`DeliverySemantics.exactlyOnceTransactional`):
/// consumes its input with a group and read_committed, runs the handler per record or per batch,
/// and commits the outputs, the state changes (to the changelog) and the input offsets in one transaction,
/// fenced by the group generation (KIP-447, one transactional producer per instance).
///
/// Recovery is one rule: anything that leaves the open transaction in doubt (a handler error, a
/// failed send, a rebalance, a commit with an unknown outcome) aborts it when it can and starts
/// a new consumer session, which resumes at the committed offsets and reloads state from the
/// changelog. A fenced producer (a newer instance with the same transactional id) stops it.
public final class ExactlyOnceProcessor: Service, Sendable {
    public typealias Handler = @Sendable (inout ProcessorContext) async throws -> Void
    public typealias BatchHandler = @Sendable (inout ProcessorBatchContext) async throws -> Void

    private enum Processing: Sendable {
        case perRecord(Handler)
        case perBatch(BatchHandler)
    }

    public let configuration: ProcessorConfiguration
    private let processing: Processing
    private let logger: Logger
    private let onCommit: @Sendable (_ records: Int) -> Void

    public init(
        configuration: ProcessorConfiguration, logger: Logger = Logger(label: "once.streams.processor"),
        onCommit: @escaping @Sendable (_ records: Int) -> Void = { _ in }, handler: @escaping Handler
    ) {
        self.configuration = configuration
        self.processing = .perRecord(handler)
        self.logger = logger
        self.onCommit = onCommit
    }

    /// Runs `batchHandler` once per batch of input records instead of once per record, for
    /// handlers that gain from seeing many records at once (a bulk lookup, an aggregate per
    /// batch). A batch is the records of one poll, never more than the commit policy lets
    /// into the open transaction, so each batch commits or aborts as a whole with its offsets.
    public init(
        configuration: ProcessorConfiguration, logger: Logger = Logger(label: "once.streams.processor"),
        onCommit: @escaping @Sendable (_ records: Int) -> Void = { _ in }, batchHandler: @escaping BatchHandler
    ) {
        self.configuration = configuration
        self.processing = .perBatch(batchHandler)
        self.logger = logger
        self.onCommit = onCommit
    }

    /// Why a session ended.
    private enum SessionEnd {
        case restart
        case stop
    }

    public func run() async throws {
        var producerConfiguration = ProducerConfiguration(bootstrapServers: configuration.bootstrapServers)
        producerConfiguration.transactionalId = configuration.transactionalId
        producerConfiguration.transactionTimeout = configuration.transactionTimeout
        let producer = try await KafkaProducer.connect(configuration: producerConfiguration, logger: logger)
        let admin: KafkaClient
        do {
            admin = try await KafkaClient.connect(bootstrapServers: configuration.bootstrapServers)
        } catch {
            await producer.close()
            throw error
        }
        do {
            if let changelog = configuration.changelogTopic { try await createChangelog(changelog, admin: admin) }
            var state = KeyedStateStore()
            while !Task.isCancelled, !Task.isShuttingDownGracefully {
                let end = try await session(producer: producer, admin: admin, state: &state)
                if case .stop = end { break }
            }
        } catch {
            await admin.close()
            await producer.close()
            throw error
        }
        await admin.close()
        await producer.close()
    }

    /// Compacted, as Kafka Streams makes its changelogs: a restore then reads about one record per
    /// key, not every change ever made, and deleted keys' tombstones go after delete.retention.ms.
    private func createChangelog(_ topic: String, admin: KafkaClient) async throws {
        let metadata = try await admin.metadata(topics: [configuration.inputTopics[0]])
        let partitions = Int32(metadata.topic(configuration.inputTopics[0])?.partitions.count ?? 1)
        do {
            try await admin.createTopic(topic, partitions: max(1, partitions), configs: [("cleanup.policy", "compact")])
        } catch let error as KafkaError where error.code == .topicAlreadyExists {}
    }

    private func session(producer: KafkaProducer, admin: KafkaClient, state: inout KeyedStateStore) async throws -> SessionEnd {
        var consumerConfiguration = ConsumerConfiguration(bootstrapServers: configuration.bootstrapServers)
        consumerConfiguration.groupId = configuration.groupId
        consumerConfiguration.isolationLevel = .readCommitted
        consumerConfiguration.enableAutoCommit = false
        consumerConfiguration.autoOffsetReset = .earliest
        consumerConfiguration.sessionTimeout = configuration.sessionTimeout
        consumerConfiguration.heartbeatInterval = configuration.heartbeatInterval
        let consumer = try await KafkaConsumer.connect(configuration: consumerConfiguration, logger: logger)
        try await consumer.subscribe(configuration.inputTopics)
        state.unloadAll()
        var transaction = OpenTransaction()
        let end: SessionEnd
        do {
            end = try await loop(producer: producer, consumer: consumer, admin: admin, state: &state, transaction: &transaction)
        } catch {
            await consumer.close()
            throw error
        }
        await consumer.close()
        return end
    }

    private struct OpenTransaction {
        var isOpen = false
        var records = 0
        var openedAt: ContinuousClock.Instant?
        var group: ConsumerGroupMetadata?
        var nextOffsets: [TopicPartition: Int64] = [:]
    }

    private func loop(
        producer: KafkaProducer, consumer: KafkaConsumer, admin: KafkaClient,
        state: inout KeyedStateStore, transaction: inout OpenTransaction
    ) async throws -> SessionEnd {
        let policy = configuration.commitPolicy
        var generation: Int32?
        // Records polled but not yet let into a transaction, and the generation they came in.
        var pending: ArraySlice<ConsumerRecord> = []
        var pendingGeneration: Int32 = -1
        while true {
            if Task.isCancelled || Task.isShuttingDownGracefully {
                if transaction.isOpen { _ = try await commit(producer, consumer, &state, &transaction) }
                return .stop
            }
            if pending.isEmpty {
                let wait = policy.remainingWait(openedAt: transaction.openedAt, now: .now, idle: .milliseconds(200))
                do {
                    pending = try await consumer.poll(timeout: wait)[...]
                } catch {
                    if Task.isCancelled { continue }
                    // Group errors are retried inside the consumer; what reaches here is not.
                    logger.warning("consumer failed, restarting the session", metadata: ["error": "\(error)"])
                    return try await abandon(producer, &state, &transaction)
                }
                // A rebalance only takes effect inside a poll: this is the records' generation.
                pendingGeneration = await consumer.groupMetadata.generationId
            }
            if !pending.isEmpty {
                if generation == nil { generation = pendingGeneration }
                if pendingGeneration > generation! {
                    // A rebalance: partitions may have moved, and the open transaction with them.
                    logger.info("group generation \(generation!) -> \(pendingGeneration): aborting the open transaction")
                    return try await abandon(producer, &state, &transaction)
                }
                let take = min(pending.count, max(1, policy.maxRecords - transaction.records))
                let batch = Array(pending.prefix(take))
                pending = pending.dropFirst(take)
                if let end = try await process(batch, producer, consumer, admin, &state, &transaction) { return end }
            }
            if policy.shouldCommit(recordsInTransaction: transaction.records, openedAt: transaction.openedAt, now: .now) {
                if let end = try await commit(producer, consumer, &state, &transaction) { return end }
            }
        }
    }

    /// Runs the handler over `records` inside the open transaction (opening one first);
    /// returns how the session must end when that failed.
    private func process(
        _ records: [ConsumerRecord], _ producer: KafkaProducer, _ consumer: KafkaConsumer, _ admin: KafkaClient,
        _ state: inout KeyedStateStore, _ transaction: inout OpenTransaction
    ) async throws -> SessionEnd? {
        if configuration.changelogTopic != nil {
            for tp in Set(records.map(\.topicPartition)) where !state.isLoaded(tp) {
                state.restore(tp, try await restoreState(tp, admin: admin))
            }
        }
        if !transaction.isOpen {
            do {
                try await producer.beginTransaction()
            } catch let error as TransactionError where error.kind == .fenced {
                return .stop
            }
            transaction = OpenTransaction(isOpen: true, openedAt: .now, group: await consumer.groupMetadata)
        }
        var outputs: [ProducerMessage] = []
        var swapped = KeyedStateStore()
        swap(&swapped, &state)
        switch processing {
        case .perRecord(let handler):
            for record in records {
                var context = ProcessorContext(record: record, state: swapped)
                do {
                    try await handler(&context)
                } catch {
                    state = context.state
                    logger.warning(
                        "handler failed at \(record.topicPartition)@\(record.offset); aborting", metadata: ["error": "\(error)"])
                    return try await abandon(producer, &state, &transaction)
                }
                swapped = context.state
                outputs.append(contentsOf: context.outputs)
            }
        case .perBatch(let handler):
            var context = ProcessorBatchContext(records: records, state: swapped)
            do {
                try await handler(&context)
            } catch {
                state = context.state
                logger.warning("batch handler failed on \(records.count) records; aborting", metadata: ["error": "\(error)"])
                return try await abandon(producer, &state, &transaction)
            }
            swapped = context.state
            outputs = context.outputs
        }
        state = swapped
        for output in outputs {
            try await producer.enqueue(output) { _ in }
        }
        for record in records { transaction.nextOffsets[record.topicPartition] = record.offset + 1 }
        transaction.records += records.count
        return nil
    }

    /// Commits the open transaction; returns how the session must end when it could not.
    private func commit(
        _ producer: KafkaProducer, _ consumer: KafkaConsumer, _ state: inout KeyedStateStore, _ transaction: inout OpenTransaction
    ) async throws -> SessionEnd? {
        guard transaction.isOpen, let group = transaction.group else { return nil }
        if await consumer.groupMetadata.generationId != group.generationId {
            return try await abandon(producer, &state, &transaction)
        }
        do {
            if let changelog = configuration.changelogTopic {
                for change in state.pendingChanges {
                    try await producer.enqueue(
                        ProducerMessage(topic: changelog, partition: change.partition.partition, key: Array(change.key.utf8), value: change.value)
                    ) { _ in }
                }
            }
            try await producer.sendOffsets(transaction.nextOffsets, groupMetadata: group)
            try await producer.commitTransaction()
        } catch let error as TransactionError {
            switch error.kind {
            case .fenced, .fatal:
                logger.error("stopping: \(error)")
                return .stop
            case .outcomeUnknown:
                // Committed or not, the broker decides; the next session reads which.
                state.unloadAll()
                transaction = OpenTransaction()
                return .restart
            case .abortRequired, .invalidState:
                return try await abandon(producer, &state, &transaction)
            }
        } catch {
            logger.warning("commit failed: \(error)")
            return try await abandon(producer, &state, &transaction)
        }
        state.commit()
        onCommit(transaction.records)
        transaction = OpenTransaction()
        return nil
    }

    /// Aborts the open transaction (when there is one) and asks for a new session.
    private func abandon(
        _ producer: KafkaProducer, _ state: inout KeyedStateStore, _ transaction: inout OpenTransaction
    ) async throws -> SessionEnd {
        state.abort()
        state.unloadAll()
        if transaction.isOpen {
            do {
                try await producer.abortTransaction()
            } catch let error as TransactionError where error.kind == .fenced || error.kind == .fatal {
                return .stop
            } catch {
                logger.warning("abort failed; the next transaction re-initialises", metadata: ["error": "\(error)"])
            }
        }
        transaction = OpenTransaction()
        return .restart
    }

    /// Reads a partition's changelog to its last stable offset, once no transaction is open on it.
    /// The log may be compacted: offsets have gaps, and a key's last record is its value.
    private func restoreState(_ input: TopicPartition, admin: KafkaClient) async throws -> [String: [UInt8]] {
        guard let changelog = configuration.changelogTopic else { return [:] }
        let tp = TopicPartition(changelog, input.partition)
        var end: Int64 = 0
        let deadline = ContinuousClock.now + configuration.transactionTimeout
        while true {
            let stable = try await admin.listOffsets([tp: .latest], isolation: .readCommitted)[tp] ?? 0
            let high = try await admin.listOffsets([tp: .latest], isolation: .readUncommitted)[tp] ?? 0
            end = stable
            if stable >= high || ContinuousClock.now >= deadline { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        var position = try await admin.listOffsets([tp: .earliest])[tp] ?? 0
        var values: [String: [UInt8]] = [:]
        let reader = RecordSetReader(isolation: .readCommitted)
        while position < end {
            let fetched = try await admin.fetch([FetchPosition(tp, offset: position)], isolation: .readCommitted)
            guard let partition = fetched.first(where: { $0.topicPartition == tp }) else { continue }
            if let error = partition.error { throw error }
            let result = try reader.read(partition, from: position)
            for record in result.records where record.offset < end {
                guard let key = record.key else { continue }
                values[String(decoding: key, as: UTF8.self)] = record.value
            }
            if result.nextOffset <= position { break }
            position = result.nextOffset
        }
        // `nil` values are deletions.
        return values.compactMapValues { $0 }
    }
}
