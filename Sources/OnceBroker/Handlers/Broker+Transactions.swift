import KafkaProtocol
import NIOCore
import OnceCore
import OnceStorage

/// InitProducerId with a transactional id, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn,
/// DescribeTransactions and ListTransactions: the transaction coordinator's APIs. The coordinator's
/// rules live in OnceCore's `TransactionCoordinator`; this maps requests to its events.
extension Broker {
    func initTransactionalProducerId(_ req: InitProducerIdRequest, _ request: Request, transactionalId: String)
        -> EventLoopFuture<InitProducerIdResponse>
    {
        guard authorization(request).allowsTransactionalId(.write, transactionalId) else {
            var refused = InitProducerIdResponse()
            refused.errorCode = ErrorCode.transactionalIdAuthorizationFailed.rawValue
            return request.eventLoop.makeSucceededFuture(refused)
        }
        if let refusal = transactionCoordinatorRefusal(transactionalId) {
            var refused = InitProducerIdResponse()
            refused.errorCode = refusal.rawValue
            return request.eventLoop.makeSucceededFuture(refused)
        }
        return answerLater(request) {
            var response = InitProducerIdResponse()
            do {
                let outcome = try await self.transactions.initProducerId(
                    transactionalId: transactionalId, timeoutMs: req.transactionTimeoutMs,
                    expectedProducerId: req.producerId, expectedProducerEpoch: req.producerEpoch, now: self.clock())
                if let failure = outcome.failure {
                    response.errorCode = failure.errorCode.rawValue
                } else {
                    response.producerId = outcome.producerId
                    response.producerEpoch = outcome.producerEpoch
                }
            } catch {
                response.errorCode = self.coordinatorLogFailure(error).rawValue
            }
            return response
        }
    }

    func addPartitionsToTxn(_ req: AddPartitionsToTxnRequest, _ request: Request) -> EventLoopFuture<AddPartitionsToTxnResponse> {
        let auth = authorization(request)
        // v4+ is what brokers send each other: Cluster CLUSTER_ACTION, not the client's ACLs.
        if request.version >= 4 && !auth.allowsCluster(.clusterAction) {
            var refused = AddPartitionsToTxnResponse()
            refused.errorCode = ErrorCode.clusterAuthorizationFailed.rawValue
            return request.eventLoop.makeSucceededFuture(refused)
        }
        return answerLater(request) {
            var response = AddPartitionsToTxnResponse()
            if request.version <= 3 {
                response.resultsByTopicV3AndBelow = await self.addPartitions(
                    transactionalId: req.v3AndBelowTransactionalId, producerId: req.v3AndBelowProducerId,
                    producerEpoch: req.v3AndBelowProducerEpoch, topics: req.v3AndBelowTopics, verifyOnly: false,
                    version: request.version, client: auth)
            } else {
                // v4+ is the batched form brokers use; `verifyOnly` asks without adding (KIP-890).
                var results: [AddPartitionsToTxnResponse.AddPartitionsToTxnResult] = []
                for txn in req.transactions {
                    var result = AddPartitionsToTxnResponse.AddPartitionsToTxnResult()
                    result.transactionalId = txn.transactionalId
                    result.topicResults = await self.addPartitions(
                        transactionalId: txn.transactionalId, producerId: txn.producerId, producerEpoch: txn.producerEpoch,
                        topics: txn.topics, verifyOnly: txn.verifyOnly, version: request.version, client: nil)
                    results.append(result)
                }
                response.resultsByTransaction = results
            }
            return response
        }
    }

    private func addPartitions(
        transactionalId: String, producerId: Int64, producerEpoch: Int16,
        topics: [AddPartitionsToTxnRequest.AddPartitionsToTxnTopic], verifyOnly: Bool, version: Int16,
        client: RequestAuthorization?
    ) async -> [AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult] {
        // A client (v3 and below) needs TransactionalId WRITE, and Topic WRITE on each topic it adds;
        // internal topics are never a client's to add.
        if let client, !client.allowsTransactionalId(.write, transactionalId) {
            return Self.topicResults(topics) { _ in .transactionalIdAuthorizationFailed }
        }
        let refusedTopics = Set(
            topics.map(\.name).filter { name in
                client.map { !$0.allowsTopic(.write, name) || ($0.isEnabled && InternalTopics.names.contains(name)) } ?? false
            })
        // Partitions of unknown or refused topics fail alone; the others are then not attempted, as Kafka does.
        var failed: [TopicPartitionKey: ErrorCode] = [:]
        var keys: [TopicPartitionKey] = []
        for t in topics {
            for p in t.partitions {
                let key = TopicPartitionKey(t.name, p)
                if refusedTopics.contains(t.name) {
                    failed[key] = .topicAuthorizationFailed
                } else if storage.partition(topic: t.name, partition: p) == nil {
                    failed[key] = .unknownTopicOrPartition
                } else {
                    keys.append(key)
                }
            }
        }
        var codes: [TopicPartitionKey: ErrorCode] = [:]
        if !failed.isEmpty {
            for key in keys { codes[key] = .operationNotAttempted }
            codes.merge(failed) { _, failure in failure }
        } else if let refusal = transactionCoordinatorRefusal(transactionalId) {
            for key in keys { codes[key] = refusal }
        } else if verifyOnly {
            // v5 lets the coordinator answer TRANSACTION_ABORTABLE for a partition outside the
            // transaction, as Kafka's `handleVerifyPartitionsInTransaction` does; the asking
            // broker turns it into what its own client knows.
            for key in keys {
                let failure = transactions.verify(
                    transactionalId: transactionalId, producerId: producerId, producerEpoch: producerEpoch, partition: key)
                codes[key] = failure == .invalidTxnState && version >= 5
                    ? .transactionAbortable : failure?.errorCode ?? ErrorCode.none
            }
        } else {
            let code: ErrorCode
            do {
                // A broker's add (v4+) is a partition leader adding itself for a transactions-V2
                // write (Produce v12, TxnOffsetCommit v5), as Kafka's AddPartitionsToTxnManager asks.
                code = try await transactions.addPartitions(
                    transactionalId: transactionalId, producerId: producerId, producerEpoch: producerEpoch, partitions: keys,
                    transactionVersion: version >= 4 ? 2 : 0, now: self.clock())?.errorCode ?? ErrorCode.none
            } catch {
                code = coordinatorLogFailure(error)
            }
            for key in keys { codes[key] = code }
        }
        return Self.topicResults(topics) { codes[$0] ?? ErrorCode.none }
    }

    private static func topicResults(
        _ topics: [AddPartitionsToTxnRequest.AddPartitionsToTxnTopic], _ code: (TopicPartitionKey) -> ErrorCode
    ) -> [AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult] {
        topics.map { t in
            var result = AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult()
            result.name = t.name
            result.resultsByPartition = t.partitions.map { p in
                var r = AddPartitionsToTxnResponse.AddPartitionsToTxnPartitionResult()
                r.partitionIndex = p
                r.partitionErrorCode = code(TopicPartitionKey(t.name, p)).rawValue
                return r
            }
            return result
        }
    }

    func addOffsetsToTxn(_ req: AddOffsetsToTxnRequest, _ request: Request) -> EventLoopFuture<AddOffsetsToTxnResponse> {
        let auth = authorization(request)
        let refusal: ErrorCode? =
            !auth.allowsTransactionalId(.write, req.transactionalId) ? .transactionalIdAuthorizationFailed
            : !auth.allowsGroup(.read, req.groupId) ? .groupAuthorizationFailed
            : transactionCoordinatorRefusal(req.transactionalId)
        if let refusal {
            var refused = AddOffsetsToTxnResponse()
            refused.errorCode = refusal.rawValue
            return request.eventLoop.makeSucceededFuture(refused)
        }
        return answerLater(request) {
            var response = AddOffsetsToTxnResponse()
            do {
                // The group's offsets live in its __consumer_offsets partition; that partition joins
                // the transaction and gets its marker like any other.
                let partition = try self.consumerOffsetsPartition(forGroup: req.groupId)
                response.errorCode = (try await self.transactions.addPartitions(
                    transactionalId: req.transactionalId, producerId: req.producerId, producerEpoch: req.producerEpoch,
                    partitions: [partition], now: self.clock())?.errorCode ?? ErrorCode.none).rawValue
            } catch {
                response.errorCode = self.coordinatorLogFailure(error).rawValue
            }
            return response
        }
    }

    func endTxn(_ req: EndTxnRequest, _ request: Request) -> EventLoopFuture<EndTxnResponse> {
        guard authorization(request).allowsTransactionalId(.write, req.transactionalId) else {
            var refused = EndTxnResponse()
            refused.errorCode = ErrorCode.transactionalIdAuthorizationFailed.rawValue
            return request.eventLoop.makeSucceededFuture(refused)
        }
        if let refusal = transactionCoordinatorRefusal(req.transactionalId) {
            var refused = EndTxnResponse()
            refused.errorCode = refusal.rawValue
            return request.eventLoop.makeSucceededFuture(refused)
        }
        return answerLater(request) {
            var response = EndTxnResponse()
            do {
                // v5 is transactions V2 (KIP-890): the end bumps the epoch and the answer says which to use next.
                let outcome = try await self.transactions.endTransaction(
                    transactionalId: req.transactionalId, producerId: req.producerId, producerEpoch: req.producerEpoch,
                    commit: req.committed, transactionVersion: request.version >= 5 ? 2 : 0, now: self.clock())
                if let failure = outcome.failure {
                    response.errorCode = failure.errorCode.rawValue
                } else {
                    response.producerId = outcome.producerId
                    response.producerEpoch = outcome.producerEpoch
                }
            } catch {
                response.errorCode = self.coordinatorLogFailure(error).rawValue
            }
            return response
        }
    }

    /// TxnOffsetCommit. From v5 (transactions V2) the client sends no AddOffsetsToTxn: the group's
    /// offsets partition joins the transaction here first, as Kafka's group coordinator asks the
    /// transaction coordinator, keyed on the request version alone
    /// (`txnOffsetCommitRequestVersionToTransactionSupportedOperation`), whatever
    /// `transaction.version` is finalized. A refused add is answered as Kafka's group coordinator
    /// answers it: the verification turns PRODUCER_FENCED into INVALID_PRODUCER_EPOCH, and
    /// `CoordinatorOperationExceptionHelper.handleOperationException` passes every other
    /// coordinator code through, CONCURRENT_TRANSACTIONS included (unlike Produce below v12, no
    /// NOT_ENOUGH_REPLICAS here: that code would itself become COORDINATOR_NOT_AVAILABLE).
    func txnOffsetCommit(_ req: TxnOffsetCommitRequest, _ request: Request) -> EventLoopFuture<TxnOffsetCommitResponse> {
        // A transaction coordinated on another broker is asked there, for every version.
        if !req.groupId.isEmpty, groupCoordinatorRefusal(req.groupId) == nil,
            let partition = try? consumerOffsetsPartition(forGroup: req.groupId),
            let coordinator = remoteTransactionCoordinator(req.transactionalId)
        {
            return answerLater(request) {
                let code = await self.verifyOffsetsRemotely(
                    transactionalId: req.transactionalId, producerId: req.producerId, producerEpoch: req.producerEpoch,
                    partition: partition, coordinator: coordinator, version: request.version)
                return code == .none
                    ? self.verifiedTxnOffsetCommit(req, request, verifiedRemotely: true) : Self.txnOffsetCommitRefused(req, code)
            }
        }
        // Only the group's coordinator adds its offsets partition; elsewhere the refusal below answers.
        guard request.version >= 5, !req.groupId.isEmpty, groupCoordinatorRefusal(req.groupId) == nil,
            let partition = try? consumerOffsetsPartition(forGroup: req.groupId)
        else { return request.eventLoop.makeSucceededFuture(verifiedTxnOffsetCommit(req, request)) }
        return answerLater(request) {
            let code: ErrorCode
            do {
                code = try await self.transactions.addPartitions(
                    transactionalId: req.transactionalId, producerId: req.producerId, producerEpoch: req.producerEpoch,
                    partitions: [partition], transactionVersion: 2, now: self.clock()
                )?.partitionWriteErrorCode ?? .none
            } catch {
                code = self.transactionStorageFailure(error)
            }
            return code == .none ? self.verifiedTxnOffsetCommit(req, request) : Self.txnOffsetCommitRefused(req, code)
        }
    }

    private static func txnOffsetCommitRefused(_ req: TxnOffsetCommitRequest, _ code: ErrorCode) -> TxnOffsetCommitResponse {
        var response = TxnOffsetCommitResponse()
        response.topics = req.topics.map { t in
            var topic = TxnOffsetCommitResponse.TxnOffsetCommitResponseTopic()
            topic.name = t.name
            topic.partitions = t.partitions.map { p in
                var partition = TxnOffsetCommitResponse.TxnOffsetCommitResponsePartition()
                partition.partitionIndex = p.partitionIndex
                partition.errorCode = code.rawValue
                return partition
            }
            return topic
        }
        return response
    }

    /// The consumer offsets of a read-process-write transaction. Refused unless the producer is
    /// current and the group's offsets partition joined its transaction (AddOffsetsToTxn, or the
    /// implicit add of v5).
    private func verifiedTxnOffsetCommit(
        _ req: TxnOffsetCommitRequest, _ request: Request, verifiedRemotely: Bool = false
    ) -> TxnOffsetCommitResponse {
        let now = clock()
        let auth = authorization(request)
        // TransactionalId WRITE, then Group READ, for the whole request; Topic READ per topic.
        let refusal: ErrorCode? =
            !auth.allowsTransactionalId(.write, req.transactionalId) ? .transactionalIdAuthorizationFailed
            : !auth.allowsGroup(.read, req.groupId) ? .groupAuthorizationFailed : nil
        let refusedTopics = refusal != nil ? [] : Set(req.topics.map(\.name).filter { !auth.allowsTopic(.read, $0) })
        var offsets: [GroupPartition: CommittedOffset] = [:]
        for t in req.topics where !refusedTopics.contains(t.name) {
            for p in t.partitions {
                offsets[GroupPartition(t.name, p.partitionIndex)] = CommittedOffset(
                    offset: p.committedOffset, leaderEpoch: request.version >= 2 ? p.committedLeaderEpoch : -1,
                    metadata: p.committedMetadata, commitTimestampMs: now)
            }
        }
        let outcome: Result<[GroupPartition: GroupError?], ErrorCode>
        if let refusal {
            outcome = .failure(refusal)
        } else if offsets.isEmpty && !refusedTopics.isEmpty {
            outcome = .success([:])
        } else if req.groupId.isEmpty {
            outcome = .failure(.invalidGroupId)
        } else if let notHere = groupCoordinatorRefusal(req.groupId) {
            outcome = .failure(notHere)
        } else if !verifiedRemotely, let failure = (try? consumerOffsetsPartition(forGroup: req.groupId)).flatMap({
            transactions.verify(producerId: req.producerId, producerEpoch: req.producerEpoch, partition: $0)
        }) {
            outcome = .failure(failure.transactionalWriteErrorCode(
                coordinatorVerifiedOnly: request.version == 4, clientKnowsAbortable: request.version >= 4))
        } else {
            // v3+ (KIP-447) carries the consumer's group metadata, checked like a plain commit.
            outcome = groups.transactionalCommit(
                groupId: req.groupId, producerId: req.producerId, producerEpoch: req.producerEpoch,
                memberId: request.version >= 3 ? req.memberId : "",
                groupInstanceId: request.version >= 3 ? req.groupInstanceId : nil,
                generationId: request.version >= 3 ? req.generationId : -1, offsets: offsets
            ).mapError(\.errorCode)
        }
        var response = TxnOffsetCommitResponse()
        response.topics = req.topics.map { t in
            var topic = TxnOffsetCommitResponse.TxnOffsetCommitResponseTopic()
            topic.name = t.name
            topic.partitions = t.partitions.map { p in
                var partition = TxnOffsetCommitResponse.TxnOffsetCommitResponsePartition()
                partition.partitionIndex = p.partitionIndex
                partition.errorCode =
                    refusedTopics.contains(t.name)
                    ? ErrorCode.topicAuthorizationFailed.rawValue
                    : Self.commitErrorCode(outcome, GroupPartition(t.name, p.partitionIndex))
                return partition
            }
            return topic
        }
        return response
    }

    func describeTransactions(_ req: DescribeTransactionsRequest, _ request: Request) -> DescribeTransactionsResponse {
        let known = Dictionary(uniqueKeysWithValues: transactions.transactions.map { ($0.transactionalId, $0) })
        var response = DescribeTransactionsResponse()
        let auth = authorization(request)
        response.transactionStates = req.transactionalIds.map { id in
            var state = DescribeTransactionsResponse.TransactionState()
            state.transactionalId = id
            guard auth.allowsTransactionalId(.describe, id) else {
                state.errorCode = ErrorCode.transactionalIdAuthorizationFailed.rawValue
                return state
            }
            if let refusal = transactionCoordinatorRefusal(id) {
                state.errorCode = refusal.rawValue
                return state
            }
            guard let txn = known[id] else {
                state.errorCode = ErrorCode.transactionalIdNotFound.rawValue
                return state
            }
            state.transactionState = txn.state.name
            state.transactionTimeoutMs = txn.timeoutMs
            state.transactionStartTimeMs = txn.startTimestamp
            state.producerId = txn.producerId
            state.producerEpoch = txn.producerEpoch
            state.topics = Dictionary(grouping: txn.partitions, by: \.topic).sorted { $0.key < $1.key }.map { topic, parts in
                var data = DescribeTransactionsResponse.TopicData()
                data.topic = topic
                data.partitions = parts.map(\.partition).sorted()
                return data
            }
            return state
        }
        return response
    }

    func listTransactions(_ req: ListTransactionsRequest, _ request: Request) -> ListTransactionsResponse {
        var response = ListTransactionsResponse()
        let knownStates = Set(TransactionState.allCases.map(\.name))
        response.unknownStateFilters = req.stateFilters.filter { !knownStates.contains($0) }
        let now = clock()
        let auth = authorization(request)
        response.transactionStates = transactions.transactions.filter { txn in
            // Dead ids are on their way out and never listed, as in Kafka; ids the principal may
            // not DESCRIBE are left out.
            // Each broker lists the ids it coordinates; the admin client asks every broker.
            txn.state != .dead && coordinatesTransaction(txn.transactionalId)
                && auth.allowsTransactionalId(.describe, txn.transactionalId)
                && (req.stateFilters.isEmpty || req.stateFilters.contains(txn.state.name))
                && (req.producerIdFilters.isEmpty || req.producerIdFilters.contains(txn.producerId))
                // v1+: only transactions that started longer ago than the filter, in any state.
                && (req.durationFilter < 0 || now - txn.startTimestamp > req.durationFilter)
        }.map { txn in
            var state = ListTransactionsResponse.TransactionState()
            state.transactionalId = txn.transactionalId
            state.producerId = txn.producerId
            state.transactionState = txn.state.name
            return state
        }
        return response
    }

    /// Answers once the coordinator's async work is done (its waits for durability must not block
    /// an event loop).
    private func answerLater<R: Sendable>(_ request: Request, _ body: @escaping @Sendable () async -> R) -> EventLoopFuture<R> {
        runtime.task(on: request.eventLoop, body)
    }

    /// The read_committed view of a partition: its last stable offset and the aborted transactions
    /// from `from` on (loading the partition's producer state on first use).
    func stableView(_ topic: String, _ partition: Int32, from: Int64) throws
        -> (lastStableOffset: Int64, aborted: [ProducerStateTable.AbortedTransaction])
    {
        guard let meta = storage.topic(named: topic), let producers = try producers.producers(topic: meta, partition: partition)
        else { throw StorageError.unknownTopic(topic) }
        return producers.stableView(from: from)
    }

    /// The `__consumer_offsets` partition holding a group's offsets.
    func consumerOffsetsPartition(forGroup groupId: String) throws -> TopicPartitionKey {
        groupCoordinatorPartition(groupId)
    }

    func transactionStorageFailure(_ error: any Error) -> ErrorCode {
        logger.error("transaction log failure", metadata: ["error": "\(error)"])
        return .kafkaStorageError
    }

    /// A coordinator request whose `__transaction_state` write failed gets the code Kafka's
    /// `TransactionStateManager.appendTransactionToLog` turns the append's error into, so clients
    /// look the coordinator up again and retry: NOT_COORDINATOR for a lost leadership or a storage
    /// failure, COORDINATOR_NOT_AVAILABLE for a write whose outcome is unknown (Kafka's timed-out
    /// append). librdkafka gives a transaction up on KAFKA_STORAGE_ERROR from EndTxn.
    func coordinatorLogFailure(_ error: any Error) -> ErrorCode {
        logger.error("transaction log failure", metadata: ["error": "\(error)"])
        switch error {
        case StorageError.outcomeUnknown: return .coordinatorNotAvailable
        case is StorageError: return .notCoordinator
        default: return .unknownServerError
        }
    }
}

