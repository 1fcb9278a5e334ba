import OnceCheck
import OnceClient

/// One transactional id of the workload and its current producer instance, recording every
/// step in the history. Owned by one task. The rules for outcomes: a transaction whose commit
/// was never sent is aborted whatever else failed; a commit that failed in any way other than a
/// clean answer is unknown, and the checker then accepts all of it or none.
struct TransactionalSession {
    struct Instance {
        var producer: KafkaProducer
        var name: String
        var identity: (producerId: Int64, epoch: Int16)
    }

    let transactionalId: String
    /// Prefix of instance and transaction names, e.g. `w1`.
    let label: String
    let configuration: VerifyConfiguration
    let recorder: HistoryRecorder
    private(set) var current: Instance?
    private var instancesStarted = 0
    private var transactionsStarted = 0
    /// Set after an unknown outcome: the producer re-initialises before its next transaction.
    private var reinitializationPending = false

    init(transactionalId: String, label: String, configuration: VerifyConfiguration, recorder: HistoryRecorder) {
        self.transactionalId = transactionalId
        self.label = label
        self.configuration = configuration
        self.recorder = recorder
    }

    /// Starts a new instance (fencing older ones), retrying until `deadline`; nil if it never
    /// connected. The caller decides whether it replaces `current`.
    mutating func startInstance(until deadline: ContinuousClock.Instant) async -> Instance? {
        while ContinuousClock.now < deadline, !Task.isCancelled {
            instancesStarted += 1
            let name = "\(label)#\(instancesStarted)"
            do {
                let producer = try await KafkaProducer.connect(
                    configuration: configuration.producerConfiguration(transactionalId: transactionalId),
                    logger: configuration.logger("once.producer"))
                let identity = await producer.identity
                recorder.record(.producerInitialized(
                    transactionalId: transactionalId, instance: name, producerId: identity.producerId,
                    epoch: identity.epoch))
                return Instance(producer: producer, name: name, identity: identity)
            } catch {
                configuration.log("\(name): cannot start yet: \(error)")
                try? await Task.sleep(for: .milliseconds(200))
            }
        }
        return nil
    }

    /// Makes sure there is a usable instance; false if none could be started by `deadline`.
    mutating func ensureInstance(until deadline: ContinuousClock.Instant) async -> Bool {
        if current != nil { return true }
        current = await startInstance(until: deadline)
        reinitializationPending = false
        return current != nil
    }

    /// Finishes the re-initialisation an unknown outcome left pending, so the coordinator has
    /// settled that transaction before the caller looks at committed offsets.
    mutating func settle() async throws {
        guard reinitializationPending, let instance = current else { return }
        try await instance.producer.initTransactions()
        reinitializationPending = false
        let identity = await instance.producer.identity
        current!.identity = identity
        recorder.record(.producerInitialized(
            transactionalId: transactionalId, instance: instance.name, producerId: identity.producerId,
            epoch: identity.epoch))
    }

    /// Begins a transaction and records it under a new name.
    mutating func begin() async throws -> String {
        guard let instance = current else { throw TransactionError(.invalidState, "no producer instance") }
        try await settle()
        try await instance.producer.beginTransaction()
        transactionsStarted += 1
        let transaction = "\(label).\(transactionsStarted)"
        let identity = await instance.producer.identity
        current!.identity = identity
        recorder.record(.transactionBegan(
            transaction: transaction, transactionalId: transactionalId, instance: instance.name,
            producerId: identity.producerId, epoch: identity.epoch))
        return transaction
    }

    /// Hands a record to the current instance; its acknowledgement is recorded when it arrives.
    func send(_ id: String, in transaction: String, topic: String, partition: Int32, source: String?) async throws {
        guard let instance = current else { throw TransactionError(.invalidState, "no producer instance") }
        try await Self.send(
            id, in: transaction, topic: topic, partition: partition, source: source, with: instance.producer,
            recorder: recorder)
    }

    static func send(
        _ id: String, in transaction: String?, topic: String, partition: Int32, source: String?,
        with producer: KafkaProducer, recorder: HistoryRecorder
    ) async throws {
        // The value is the record's id; the key names the input record an output came from, so
        // any client can check the output topic on its own.
        let key = source ?? id
        recorder.record(.recordSent(
            record: id, transaction: transaction, topic: topic, partition: partition, key: key, value: id,
            source: source))
        try await producer.enqueue(
            ProducerMessage(topic: topic, partition: partition, key: Array(key.utf8), value: Array(id.utf8))
        ) {
            if case .success(let metadata) = $0 {
                recorder.record(.recordAcknowledged(record: id, offset: metadata.offset))
            }
        }
    }

    func sendOffsets(_ offsets: [TopicPartition: Int64], in transaction: String, group: String) async throws {
        guard let instance = current else { throw TransactionError(.invalidState, "no producer instance") }
        for (partition, offset) in offsets.sorted(by: { $0.key.partition < $1.key.partition }) {
            recorder.record(.offsetsSent(
                transaction: transaction, group: group, topic: partition.topic, partition: partition.partition,
                offset: offset))
        }
        try await instance.producer.sendOffsets(offsets, groupMetadata: ConsumerGroupMetadata(groupId: group))
    }

    /// Commits or aborts the open transaction and records the outcome.
    @discardableResult
    mutating func end(_ transaction: String, commit: Bool) async -> TransactionOutcome {
        guard let instance = current else {
            recorder.record(.transactionEnded(transaction: transaction, outcome: .aborted))
            return .aborted
        }
        guard commit else {
            do {
                try await instance.producer.abortTransaction()
            } catch {
                await abandon(after: error)
            }
            recorder.record(.transactionEnded(transaction: transaction, outcome: .aborted))
            return .aborted
        }
        do {
            try await instance.producer.commitTransaction()
            recorder.record(.transactionEnded(transaction: transaction, outcome: .committed))
            return .committed
        } catch let error as TransactionError where error.kind == .outcomeUnknown {
            reinitializationPending = true
        } catch let error as TransactionError where error.kind == .abortRequired {
            // The commit may have been refused before or after EndTxn reached the coordinator.
            do {
                try await instance.producer.abortTransaction()
            } catch {
                await abandon(after: error)
            }
        } catch {
            await abandon(after: error)
        }
        recorder.record(.transactionEnded(transaction: transaction, outcome: .unknown))
        return .unknown
    }

    /// A step before the commit failed: the transaction is aborted (its commit was never sent).
    mutating func failed(_ transaction: String, _ error: any Error) async {
        configuration.log("\(transaction): \(error)")
        if let instance = current, !Self.isFenced(error) {
            do {
                try await instance.producer.abortTransaction()
            } catch {
                await abandon(after: error)
            }
        } else {
            await abandon(after: error)
        }
        recorder.record(.transactionEnded(transaction: transaction, outcome: .aborted))
    }

    /// Gives up on the current instance; the next transaction starts a new one, whose
    /// InitProducerId fences this one and settles whatever it left open.
    mutating func abandon(after error: any Error) async {
        guard let instance = current else { return }
        if Self.isFenced(error) { recordFence(instance) }
        configuration.log("\(instance.name): abandoned after \(error)")
        current = nil
        reinitializationPending = false
        await instance.producer.close()
    }

    /// The zombie scenario: with `transaction` open and its records acknowledged, a newer
    /// instance of the same transactional id starts; the old one then tries one more record and
    /// the commit. The broker must refuse both, so any acknowledgement of the extra record is a
    /// fenced append, and the transaction was aborted by the newer instance's InitProducerId.
    mutating func handOver(_ transaction: String, topic: String, partition: Int32, until deadline: ContinuousClock.Instant)
        async
    {
        guard let old = current else {
            recorder.record(.transactionEnded(transaction: transaction, outcome: .aborted))
            return
        }
        await old.producer.flush()
        guard let newer = await startInstance(until: deadline) else {
            await failed(transaction, TransactionError(.invalidState, "no newer instance could start"))
            return
        }
        current = newer
        reinitializationPending = false
        do {
            try await Self.send(
                "\(transaction).zombie", in: transaction, topic: topic, partition: partition, source: nil,
                with: old.producer, recorder: recorder)
            await old.producer.flush()
        } catch {
            configuration.log("\(old.name): extra record refused: \(error)")
        }
        var outcome = TransactionOutcome.aborted
        do {
            try await old.producer.commitTransaction()
            outcome = .committed
        } catch {
            if Self.isFenced(error) { recordFence(old) }
        }
        recorder.record(.transactionEnded(transaction: transaction, outcome: outcome))
        await old.producer.close()
    }

    mutating func close() async {
        if let instance = current { await instance.producer.close() }
        current = nil
    }

    private func recordFence(_ instance: Instance) {
        recorder.record(.fenced(
            transactionalId: transactionalId, instance: instance.name, producerId: instance.identity.producerId,
            epoch: instance.identity.epoch))
    }

    static func isFenced(_ error: any Error) -> Bool {
        (error as? TransactionError)?.kind == .fenced
    }
}
