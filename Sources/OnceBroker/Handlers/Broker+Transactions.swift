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
        answerLater(request) {
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
                response.errorCode = self.transactionStorageFailure(error).rawValue
            }
            return response
        }
    }

    func addPartitionsToTxn(_ req: AddPartitionsToTxnRequest, _ request: Request) -> EventLoopFuture<AddPartitionsToTxnResponse> {
        answerLater(request) {
            var response = AddPartitionsToTxnResponse()
            if request.version <= 3 {
                response.resultsByTopicV3AndBelow = await self.addPartitions(
                    transactionalId: req.v3AndBelowTransactionalId, producerId: req.v3AndBelowProducerId,
                    producerEpoch: req.v3AndBelowProducerEpoch, topics: req.v3AndBelowTopics, verifyOnly: false)
            } else {
                // v4+ is the batched form brokers use; `verifyOnly` asks without adding (KIP-890).
                var results: [AddPartitionsToTxnResponse.AddPartitionsToTxnResult] = []
                for txn in req.transactions {
                    var result = AddPartitionsToTxnResponse.AddPartitionsToTxnResult()
                    result.transactionalId = txn.transactionalId
                    result.topicResults = await self.addPartitions(
                        transactionalId: txn.transactionalId, producerId: txn.producerId, producerEpoch: txn.producerEpoch,
                        topics: txn.topics, verifyOnly: txn.verifyOnly)
                    results.append(result)
                }
                response.resultsByTransaction = results
            }
            return response
        }
    }

    private func addPartitions(
        transactionalId: String, producerId: Int64, producerEpoch: Int16,
        topics: [AddPartitionsToTxnRequest.AddPartitionsToTxnTopic], verifyOnly: Bool
    ) async -> [AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult] {
        // Partitions of unknown topics fail alone; the others are then not attempted, as Kafka does.
        var unknown = Set<TopicPartitionKey>()
        var keys: [TopicPartitionKey] = []
        for t in topics {
            for p in t.partitions {
                let key = TopicPartitionKey(t.name, p)
                if storage.partition(topic: t.name, partition: p) == nil { unknown.insert(key) } else { keys.append(key) }
            }
        }
        var codes: [TopicPartitionKey: ErrorCode] = [:]
        if !unknown.isEmpty {
            for key in keys { codes[key] = .operationNotAttempted }
            for key in unknown { codes[key] = .unknownTopicOrPartition }
        } else if verifyOnly {
            for key in keys {
                codes[key] = transactions.verify(
                    transactionalId: transactionalId, producerId: producerId, producerEpoch: producerEpoch, partition: key
                )?.errorCode ?? ErrorCode.none
            }
        } else {
            let code: ErrorCode
            do {
                code = try await transactions.addPartitions(
                    transactionalId: transactionalId, producerId: producerId, producerEpoch: producerEpoch, partitions: keys,
                    now: self.clock())?.errorCode ?? ErrorCode.none
            } catch {
                code = transactionStorageFailure(error)
            }
            for key in keys { codes[key] = code }
        }
        return topics.map { t in
            var result = AddPartitionsToTxnResponse.AddPartitionsToTxnTopicResult()
            result.name = t.name
            result.resultsByPartition = t.partitions.map { p in
                var r = AddPartitionsToTxnResponse.AddPartitionsToTxnPartitionResult()
                r.partitionIndex = p
                r.partitionErrorCode = (codes[TopicPartitionKey(t.name, p)] ?? ErrorCode.none).rawValue
                return r
            }
            return result
        }
    }

    func addOffsetsToTxn(_ req: AddOffsetsToTxnRequest, _ request: Request) -> EventLoopFuture<AddOffsetsToTxnResponse> {
        answerLater(request) {
            var response = AddOffsetsToTxnResponse()
            do {
                // The group's offsets live in its __consumer_offsets partition; that partition joins
                // the transaction and gets its marker like any other.
                let partition = try self.consumerOffsetsPartition(forGroup: req.groupId)
                response.errorCode = (try await self.transactions.addPartitions(
                    transactionalId: req.transactionalId, producerId: req.producerId, producerEpoch: req.producerEpoch,
                    partitions: [partition], now: self.clock())?.errorCode ?? ErrorCode.none).rawValue
            } catch {
                response.errorCode = self.transactionStorageFailure(error).rawValue
            }
            return response
        }
    }

    func endTxn(_ req: EndTxnRequest, _ request: Request) -> EventLoopFuture<EndTxnResponse> {
        answerLater(request) {
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
                response.errorCode = self.transactionStorageFailure(error).rawValue
            }
            return response
        }
    }

    /// TxnOffsetCommit. From v5 (transactions V2) the client sends no AddOffsetsToTxn: the group's
    /// offsets partition joins the transaction here first, as Kafka's group coordinator asks the
    /// transaction coordinator.
    func txnOffsetCommit(_ req: TxnOffsetCommitRequest, _ request: Request) -> EventLoopFuture<TxnOffsetCommitResponse> {
        guard request.version >= 5, !req.groupId.isEmpty, let partition = try? consumerOffsetsPartition(forGroup: req.groupId)
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
    private func verifiedTxnOffsetCommit(_ req: TxnOffsetCommitRequest, _ request: Request) -> TxnOffsetCommitResponse {
        let now = clock()
        var offsets: [GroupPartition: CommittedOffset] = [:]
        for t in req.topics {
            for p in t.partitions {
                offsets[GroupPartition(t.name, p.partitionIndex)] = CommittedOffset(
                    offset: p.committedOffset, leaderEpoch: request.version >= 2 ? p.committedLeaderEpoch : -1,
                    metadata: p.committedMetadata, commitTimestampMs: now)
            }
        }
        let outcome: Result<[GroupPartition: GroupError?], ErrorCode>
        if req.groupId.isEmpty {
            outcome = .failure(.invalidGroupId)
        } else if let failure = (try? consumerOffsetsPartition(forGroup: req.groupId)).flatMap({
            transactions.verify(producerId: req.producerId, producerEpoch: req.producerEpoch, partition: $0)
        }) {
            // v4+ clients know TRANSACTION_ABORTABLE, Kafka's answer when the offsets partition is not
            // in the transaction.
            outcome = .failure(
                failure == .invalidTxnState && request.version >= 4 ? .transactionAbortable : failure.partitionWriteErrorCode)
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
                partition.errorCode = Self.commitErrorCode(outcome, GroupPartition(t.name, p.partitionIndex))
                return partition
            }
            return topic
        }
        return response
    }

    func describeTransactions(_ req: DescribeTransactionsRequest, _ request: Request) -> DescribeTransactionsResponse {
        let known = Dictionary(uniqueKeysWithValues: transactions.transactions.map { ($0.transactionalId, $0) })
        var response = DescribeTransactionsResponse()
        response.transactionStates = req.transactionalIds.map { id in
            var state = DescribeTransactionsResponse.TransactionState()
            state.transactionalId = id
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
        response.transactionStates = transactions.transactions.filter { txn in
            // Dead ids are on their way out and never listed, as in Kafka.
            txn.state != .dead
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
        let promise = request.eventLoop.makePromise(of: R.self)
        promise.completeWithTask(body)
        return promise.futureResult
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

    /// The `__consumer_offsets` partition holding a group's offsets (there is one).
    func consumerOffsetsPartition(forGroup groupId: String) throws -> TopicPartitionKey {
        TopicPartitionKey(InternalTopics.consumerOffsets, 0)
    }

    func transactionStorageFailure(_ error: any Error) -> ErrorCode {
        logger.error("transaction log failure", metadata: ["error": "\(error)"])
        return .kafkaStorageError
    }
}

