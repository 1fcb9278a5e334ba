import KafkaProtocol

/// The records and offsets of one transaction, handed to the `withTransaction` closure.
public struct KafkaTransaction: Sendable {
    public let producer: KafkaProducer

    /// Sends a record inside the transaction and waits for the broker to hold it (it stays
    /// invisible to read_committed consumers until the commit).
    @discardableResult
    public func send(_ message: ProducerMessage) async throws -> RecordMetadata {
        try await producer.send(message)
    }

    /// Buffers a record inside the transaction; the commit waits for it.
    public func enqueue(_ message: ProducerMessage, onDelivery: @escaping KafkaProducer.DeliveryHandler = { _ in })
        async throws
    {
        try await producer.enqueue(message, onDelivery: onDelivery)
    }

    /// Commits the consumer's next offsets as part of this transaction (read-process-write).
    public func sendOffsets(_ offsets: [TopicPartition: Int64], groupMetadata: ConsumerGroupMetadata) async throws {
        try await producer.sendOffsets(offsets, groupMetadata: groupMetadata)
    }
}

extension KafkaProducer {
    /// Runs `body` in a transaction: commits when it returns, aborts when it throws (and
    /// rethrows). A fenced producer or a commit whose outcome is unknown is never aborted; the
    /// error says which, and an unknown outcome makes the next transaction re-initialise first.
    public func withTransaction<T: Sendable>(
        _ body: (KafkaTransaction) async throws -> T
    ) async throws -> T {
        try await beginTransaction()
        let result: T
        do {
            result = try await body(KafkaTransaction(producer: self))
        } catch {
            if !(error is TransactionError && (error as! TransactionError).kind == .fenced) {
                do {
                    try await abortTransaction()
                } catch let abortError as TransactionError where abortError.kind == .fenced {
                    throw abortError
                } catch {
                    logger.warning("abort after a failed transaction body failed", metadata: ["error": "\(error)"])
                }
            }
            throw error
        }
        do {
            try await commitTransaction()
        } catch let error as TransactionError where error.kind == .abortRequired {
            try? await abortTransaction()
            throw error
        }
        return result
    }

    /// Obtains the producer id and epoch for the transactional id from its coordinator, which
    /// fences any older producer with the same id and completes that producer's open
    /// transaction. `connect` calls it; it runs again after a commit with an unknown outcome.
    public func initTransactions() async throws {
        guard let transactionalId = configuration.transactionalId else {
            throw TransactionError(.invalidState, "initTransactions needs a transactional id")
        }
        try transaction.initRequested()
        let deadline = ContinuousClock.now + configuration.transactionTimeout
        while true {
            var kafkaError: KafkaError?
            do {
                let coordinator = try await client.coordinator(for: transactionalId, type: .transaction)
                let version = try coordinator.version(for: InitProducerIdRequest.self)
                var request = InitProducerIdRequest()
                request.transactionalId = transactionalId
                request.transactionTimeoutMs = configuration.transactionTimeout.milliseconds
                if version >= 3, producerId >= 0 {
                    request.producerId = producerId
                    request.producerEpoch = producerEpoch
                }
                let response = try await coordinator.send(request, version: version)
                kafkaError = KafkaError(errorCode: response.errorCode)
                if kafkaError == nil {
                    _ = transaction.initCompleted(nil)
                    useTransactionProtocol(
                        configuration.transactionsV2 && coordinator.apiVersions.offersTransactionsV2 ? .v2 : .v1)
                    setProducerIdentity(id: response.producerId, epoch: response.producerEpoch)
                    logger.debug("transactional id \(transactionalId): producer id \(producerId) epoch \(producerEpoch)")
                    return
                }
            } catch let error as KafkaError {
                kafkaError = error
            } catch let error as KafkaClientError where ContinuousClock.now < deadline {
                logger.debug("InitProducerId failed, retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: configuration.retryBackoff)
                continue
            }
            if let kafkaError, kafkaError.code == .invalidProducerEpoch, producerId >= 0 {
                // Our epoch is stale (someone else bumped it): start over without it.
                forgetProducerIdentity()
            }
            switch transaction.initCompleted(kafkaError) {
            case .success: return
            case .retry:
                guard ContinuousClock.now < deadline else {
                    throw TransactionError(.fatal, "InitProducerId kept failing: \(kafkaError!)", underlying: kafkaError)
                }
                // A retriable answer (CONCURRENT_TRANSACTIONS while the coordinator aborts the
                // fenced instance's transaction) leaves the machine initialising.
                try await Task.sleep(for: configuration.retryBackoff)
            case .failed(let error): throw error
            }
        }
    }

    /// Starts a transaction. After a commit with an unknown outcome it re-initialises first.
    public func beginTransaction() async throws {
        guard configuration.transactionalId != nil else {
            throw TransactionError(.invalidState, "beginTransaction needs a transactional id")
        }
        if transaction.needsInit { try await initTransactions() }
        try transaction.beginRequested()
    }

    /// Flushes the transaction's records and commits it. Throws `.abortRequired` when a record
    /// failed (then call `abortTransaction`), `.fenced`, or `.outcomeUnknown`.
    public func commitTransaction() async throws {
        await flush()
        try await waitForPartitionsAdded()
        switch try transaction.commitRequested() {
        case .completeLocally: transaction.completedLocally()
        case .sendEndTxn(let commit): try await endTransaction(commit: commit)
        case .reinitialize: try await initTransactions()
        }
    }

    /// Drops unsent records (their sends fail), waits for in-flight ones, and aborts.
    public func abortTransaction() async throws {
        let action = try transaction.abortRequested()
        await discardUnsent(TransactionError(.abortRequired, "the transaction was aborted"))
        switch action {
        case .completeLocally: transaction.completedLocally()
        case .sendEndTxn(let commit): try await endTransaction(commit: commit)
        case .reinitialize: try await initTransactions()
        }
    }

    /// Adds a consumer's offsets to the current transaction (AddOffsetsToTxn, then
    /// TxnOffsetCommit to the group coordinator), so they commit or abort with its records.
    /// With transactions V2 the TxnOffsetCommit adds the offsets itself. `offsets` are the next
    /// offsets to read, as for any offset commit.
    public func sendOffsets(_ offsets: [TopicPartition: Int64], groupMetadata: ConsumerGroupMetadata) async throws {
        guard let transactionalId = configuration.transactionalId else {
            throw TransactionError(.invalidState, "sendOffsets needs a transactional id")
        }
        try transaction.offsetsRequested()
        let txnProtocol = transactionProtocol
        if txnProtocol == .v1 {
            try await retryingCoordinatorCall(step: "AddOffsetsToTxn") {
                let coordinator = try await self.client.coordinator(for: transactionalId, type: .transaction)
                var request = AddOffsetsToTxnRequest()
                request.transactionalId = transactionalId
                request.producerId = await self.producerId
                request.producerEpoch = await self.producerEpoch
                request.groupId = groupMetadata.groupId
                return KafkaError(errorCode: try await coordinator.send(request).errorCode)
            }
        }
        try await retryingCoordinatorCall(step: "TxnOffsetCommit") {
            let coordinator = try await self.client.coordinator(for: groupMetadata.groupId, type: .group)
            var request = TxnOffsetCommitRequest()
            request.transactionalId = transactionalId
            request.groupId = groupMetadata.groupId
            request.producerId = await self.producerId
            request.producerEpoch = await self.producerEpoch
            request.generationId = groupMetadata.generationId
            request.memberId = groupMetadata.memberId
            request.groupInstanceId = groupMetadata.groupInstanceId
            request.topics = Dictionary(grouping: offsets, by: \.key.topic).sorted { $0.key < $1.key }.map { topic, entries in
                var t = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic()
                t.name = topic
                t.partitions = entries.sorted { $0.key.partition < $1.key.partition }.map {
                    var p = TxnOffsetCommitRequest.TxnOffsetCommitRequestPartition()
                    p.partitionIndex = $0.key.partition
                    p.committedOffset = $0.value
                    p.committedMetadata = ""
                    return p
                }
                return t
            }
            let version = try Self.version(
                TxnOffsetCommitRequest.self, txnProtocol, cap: txnProtocol.txnOffsetCommit, on: coordinator)
            let response = try await coordinator.send(request, version: version)
            for topic in response.topics {
                for partition in topic.partitions {
                    if let error = KafkaError(errorCode: partition.errorCode) { return error }
                }
            }
            return nil
        }
    }

    /// Switches the transaction protocol (at InitProducerId, between transactions).
    func useTransactionProtocol(_ txnProtocol: TransactionProtocol) {
        if txnProtocol != transactionProtocol {
            logger.debug("transactions \(txnProtocol == .v2 ? "V2" : "V1") with the coordinator")
        }
        transactionProtocol = txnProtocol
        transaction.addsPartitionsImplicitly = txnProtocol == .v2
    }

    /// The version of a transaction request under `txnProtocol`; throws when the broker has none
    /// that fits it.
    static func version<R: KafkaRequest>(
        _ type: R.Type, _ txnProtocol: TransactionProtocol, cap: Int16, on connection: KafkaConnection
    ) throws -> Int16 {
        guard let version = txnProtocol.version(for: type, in: connection.apiVersions, cap: cap) else {
            throw KafkaClientError(.unsupportedApi, "\(connection.endpoint) has no \(R.self) version for transactions \(txnProtocol)")
        }
        return version
    }

    /// Runs one coordinator request until it succeeds, fails for good, or the transaction
    /// timeout passes; `call` returns the response's error code.
    private func retryingCoordinatorCall(step: String, _ call: @Sendable () async throws -> KafkaError?) async throws {
        let deadline = ContinuousClock.now + configuration.transactionTimeout
        while true {
            let error: KafkaError?
            do {
                error = try await call()
            } catch let clientError as KafkaClientError {
                guard ContinuousClock.now < deadline else { throw clientError }
                try await Task.sleep(for: configuration.retryBackoff)
                continue
            }
            switch transaction.offsetsAdded(error: error, during: step) {
            case .success: return
            case .retry:
                guard ContinuousClock.now < deadline else {
                    throw TransactionError(.abortRequired, "\(step) kept failing: \(error!)", underlying: error)
                }
                try await Task.sleep(for: configuration.retryBackoff)
            case .failed(let failure): throw failure
            }
        }
    }

    /// A commit must not be sent while partitions are still being added: the coordinator would
    /// not write markers to them.
    private func waitForPartitionsAdded() async throws {
        while !transaction.pendingPartitions.isEmpty, transaction.state == .inTransaction {
            addPendingPartitions()
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// EndTxn, retried on coordinator errors. No answer at all makes the outcome unknown.
    private func endTransaction(commit: Bool) async throws {
        let transactionalId = configuration.transactionalId!
        let deadline = ContinuousClock.now + configuration.transactionTimeout
        while true {
            let error: KafkaError?
            do {
                let coordinator = try await client.coordinator(for: transactionalId, type: .transaction)
                var request = EndTxnRequest()
                request.transactionalId = transactionalId
                request.producerId = producerId
                request.producerEpoch = producerEpoch
                request.committed = commit
                let version = try Self.version(EndTxnRequest.self, transactionProtocol, cap: transactionProtocol.endTxn, on: coordinator)
                let response = try await coordinator.send(request, version: version)
                error = KafkaError(errorCode: response.errorCode)
                if error == nil, version >= TransactionProtocol.v2.endTxn, response.producerId >= 0, response.producerEpoch >= 0 {
                    // Transactions V2: every end bumps the epoch (or moves to a new producer id when
                    // the epoch ran out); the next transaction uses what the coordinator answered.
                    setProducerIdentity(id: response.producerId, epoch: response.producerEpoch)
                }
            } catch let clientError as KafkaClientError {
                if clientError.kind == .cannotConnect, ContinuousClock.now < deadline {
                    // Nothing was sent, so nothing is ambiguous yet.
                    try await Task.sleep(for: configuration.retryBackoff)
                    continue
                }
                if case .failed(let failure) = transaction.endCompleted(error: nil, ambiguous: true) {
                    logger.warning("EndTxn outcome unknown: \(clientError)")
                    throw failure
                }
                return
            }
            switch transaction.endCompleted(error: error, ambiguous: false) {
            case .success: return
            case .retry:
                guard ContinuousClock.now < deadline else {
                    if case .failed(let failure) = transaction.endCompleted(error: nil, ambiguous: true) { throw failure }
                    return
                }
                try await Task.sleep(for: configuration.retryBackoff)
            case .failed(let failure): throw failure
            }
        }
    }

    /// AddPartitionsToTxn for `partitions`; returns the first error, nil on success.
    func sendAddPartitions(_ partitions: Set<TopicPartition>) async -> KafkaError? {
        let transactionalId = configuration.transactionalId!
        do {
            let coordinator = try await client.coordinator(for: transactionalId, type: .transaction)
            let version = try coordinator.version(for: AddPartitionsToTxnRequest.self)
            let topics = Dictionary(grouping: partitions, by: \.topic).sorted { $0.key < $1.key }.map { topic, parts in
                var t = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic()
                t.name = topic
                t.partitions = parts.map(\.partition).sorted()
                return t
            }
            var request = AddPartitionsToTxnRequest()
            if version >= 4 {
                var txn = AddPartitionsToTxnRequest.AddPartitionsToTxnTransaction()
                txn.transactionalId = transactionalId
                txn.producerId = producerId
                txn.producerEpoch = producerEpoch
                txn.topics = topics
                request.transactions = [txn]
            } else {
                request.v3AndBelowTransactionalId = transactionalId
                request.v3AndBelowProducerId = producerId
                request.v3AndBelowProducerEpoch = producerEpoch
                request.v3AndBelowTopics = topics
            }
            let response = try await coordinator.send(request, version: version)
            if let error = KafkaError(errorCode: response.errorCode) { return error }
            let results = version >= 4 ? response.resultsByTransaction.flatMap(\.topicResults) : response.resultsByTopicV3AndBelow
            for topic in results {
                for partition in topic.resultsByPartition {
                    if let error = KafkaError(errorCode: partition.partitionErrorCode) { return error }
                }
            }
            return nil
        } catch let error as KafkaError {
            return error
        } catch {
            return KafkaError(.coordinatorNotAvailable, message: "\(error)")
        }
    }
}
