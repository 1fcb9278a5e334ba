import KafkaProtocol
import NIOCore
import OnceCore
import OnceStorage

/// Produce: validate each partition's batches (the header, then every record, as Kafka does, so a
/// batch no consumer could read is never stored), append them as sent, wake waiting fetches, and
/// answer once the flush policy says the data is safe.
extension Broker {
    func produce(_ req: ProduceRequest, _ request: Request) -> EventLoopFuture<ProduceResponse> {
        // v12 is transactions V2 (KIP-890): the client sends no AddPartitionsToTxn, so each
        // partition of a transactional write adds itself to the transaction first, as Kafka's
        // partition leader asks the coordinator. Kafka keys this on the request version alone
        // (`AddPartitionsToTxnManager.produceRequestVersionToTransactionSupportedOperation`), not
        // on the finalized `transaction.version`, so a broker finalizing 1 serves it the same.
        // The coordinator's refusal reaches the client as Kafka's leader passes it on: only
        // PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH, and CONCURRENT_TRANSACTIONS (the previous
        // transaction's markers still being written) stays itself for v12 (KAFKA-18662), where
        // Kafka's leader turns it into NOT_ENOUGH_REPLICAS for the versions before.
        //
        // A transaction coordinated on another broker is asked there, for every version.
        let previous = request.session.appendOrder.pending
        guard let transactionalId = req.transactionalId, !transactionalId.isEmpty else {
            return inOrder(req, request, after: previous, refused: nil)
        }
        let remote = remoteTransactionCoordinator(transactionalId)
        guard request.version >= 12 || remote != nil else { return inOrder(req, request, after: previous, refused: nil) }
        let writes = transactionalWrites(req)
        guard !writes.isEmpty else { return inOrder(req, request, after: previous, refused: nil) }
        if let remote {
            let verified = runtime.task(on: request.eventLoop) {
                await self.verifyRemotely(transactionalId: transactionalId, writes: writes, coordinator: remote, version: request.version)
            }
            return inOrder(req, request, after: previous, refused: verified)
        }
        let verified = runtime.task(on: request.eventLoop) {
            var refused: [TopicPartitionKey: ErrorCode] = [:]
            for (producer, partitions) in writes {
                let code: ErrorCode
                do {
                    code = try await self.transactions.addPartitions(
                        transactionalId: transactionalId, producerId: producer.id, producerEpoch: producer.epoch,
                        partitions: partitions, transactionVersion: 2, now: self.clock()
                    )?.partitionWriteErrorCode ?? .none
                } catch {
                    code = self.transactionStorageFailure(error)
                }
                if code != .none { for key in partitions { refused[key] = code } }
            }
            return ProduceVerification(refused: refused)
        }
        return inOrder(req, request, after: previous, refused: verified)
    }

    /// Appends once the connection's previous Produce has appended (see `ConnectionAppendOrder`)
    /// and the coordinator has answered for this one's partitions; at once, with nothing to wait
    /// for. The verification itself runs meanwhile: only the append waits its turn.
    private func inOrder(
        _ req: ProduceRequest, _ request: Request, after previous: EventLoopFuture<Void>?,
        refused: EventLoopFuture<ProduceVerification>?
    ) -> EventLoopFuture<ProduceResponse> {
        guard previous != nil || refused != nil else { return append(req, request, refused: ProduceVerification()) }
        let eventLoop = request.eventLoop
        let refused = refused ?? eventLoop.makeSucceededFuture(ProduceVerification())
        let ready = previous.map { previous in previous.flatMap { refused } } ?? refused
        let appended = ready.map { self.append(req, request, refused: $0) }
        request.session.appendOrder.register(appended.map { _ in () }.recover { _ in () })
        return appended.flatMap { $0 }
    }

    /// A producer id and epoch, as a transactional batch header carries them.
    struct ProducerIdentity: Hashable {
        var id: Int64
        var epoch: Int16
    }

    /// The existing partitions each producer writes transactional batches to (auto-creating
    /// topics first, as the append would).
    private func transactionalWrites(_ req: ProduceRequest) -> [ProducerIdentity: [TopicPartitionKey]] {
        var writes: [ProducerIdentity: [TopicPartitionKey]] = [:]
        for t in req.topicData where !InternalTopics.names.contains(t.name) {
            guard case .success = topicForUse(t.name, autoCreate: config.autoCreateTopics) else { continue }
            for p in t.partitionData {
                guard let records = p.records, storage.partition(topic: t.name, partition: p.index) != nil,
                    let header = try? RecordBatchHeader(reading: records, at: records.readerIndex),
                    header.isTransactional, header.hasProducerId
                else { continue }
                writes[ProducerIdentity(id: header.producerId, epoch: header.producerEpoch), default: []]
                    .append(TopicPartitionKey(t.name, p.index))
            }
        }
        return writes
    }

    private func append(
        _ req: ProduceRequest, _ request: Request, refused verification: ProduceVerification
    ) -> EventLoopFuture<ProduceResponse> {
        var response = ProduceResponse()
        var durable: [EventLoopFuture<Void>] = []
        var syncs: [(any PartitionLog, Int64, FetchWaiters.PartitionKey)] = []
        let validAcks = req.acks == 0 || req.acks == 1 || req.acks == -1
        let auth = authorization(request)
        // Transactional batches need TransactionalId WRITE, refused for the whole request as Kafka does.
        let transactionalRefused =
            auth.isEnabled && Self.carriesTransactionalBatches(req)
            && !(req.transactionalId.map { auth.allowsTransactionalId(.write, $0) } ?? false)
        response.responses = req.topicData.map { t in
            var topic = ProduceResponse.TopicProduceResponse()
            topic.name = t.name
            // Internal topics are written by the coordinators only, as in Kafka.
            let meta = !validAcks ? .failure(.invalidRequiredAcks)
                : transactionalRefused ? .failure(.transactionalIdAuthorizationFailed)
                : !auth.allowsTopic(.write, t.name) ? .failure(.topicAuthorizationFailed)
                : InternalTopics.names.contains(t.name) ? .failure(.invalidTopicException)
                : topicForUse(t.name, autoCreate: config.autoCreateTopics && auth.allowsCreatingTopic(t.name))
            var appendedBytes = 0
            var appendedRecords = 0
            topic.partitionResponses = t.partitionData.map { p in
                var result = ProduceResponse.PartitionProduceResponse()
                result.index = p.index
                result.baseOffset = -1
                switch meta {
                case .failure(let code):
                    result.errorCode = code.rawValue
                case .success(let meta):
                    guard let log = storage.partition(topic: t.name, partition: p.index) else {
                        result.errorCode = ErrorCode.unknownTopicOrPartition.rawValue
                        break
                    }
                    let key = TopicPartitionKey(t.name, p.index)
                    if let code = leadershipRefusal(t.name, p.index) ?? verification.refused[key] {
                        result.errorCode = code.rawValue
                        break
                    }
                    do {
                        let appended = try append(
                            p.records, to: log, topic: meta, partition: p.index, requestVersion: request.version,
                            coordinatorAsked: !(req.transactionalId ?? "").isEmpty,
                            verifiedRemotely: verification.guards[key])
                        result.baseOffset = appended.baseOffset
                        result.logAppendTimeMs = appended.logAppendTime ?? -1
                        result.logStartOffset = log.logStartOffset
                        if appended.isNew {
                            waiters.notify(.init(topic: t.name, partition: p.index))
                            appendedBytes += appended.bytes
                            appendedRecords += appended.records
                        }
                        if config.flushPolicy.acknowledgesOnlyDurableWrites {
                            syncs.append((log, appended.durableUpTo, FetchWaiters.PartitionKey(topic: t.name, partition: p.index)))
                        }
                    } catch let error as ProduceError {
                        result.errorCode = error.code.rawValue
                        result.errorMessage = error.message
                        result.recordErrors = error.recordErrors.map { index, message in
                            var recordError = ProduceResponse.BatchIndexAndErrorMessage()
                            recordError.batchIndex = index
                            recordError.batchIndexErrorMessage = message
                            return recordError
                        }
                    } catch {
                        let (code, message) = errorCode(for: error)
                        result.errorCode = code.rawValue
                        result.errorMessage = message
                    }
                }
                if result.errorCode != 0 { metrics.error(.produce, ErrorCode(result.errorCode)) }
                return result
            }
            metrics.topicAppended(t.name, bytes: appendedBytes, records: appendedRecords)
            return topic
        }
        // The waits start once every partition is appended, so an engine that commits when asked
        // (postgres) writes the whole request in one round.
        for (log, end, key) in syncs {
            let synced = runtime.task(on: request.eventLoop) {
                try await log.waitDurable(upTo: end)
                // The high watermark moved with the sync: wake the fetches it held back.
                self.waiters.notify(key)
            }
            // acks=0 is not answered, but its data is synced all the same, or it would stay
            // unreadable until some later write synced it.
            if req.acks != 0 { durable.append(synced) }
        }
        guard !durable.isEmpty else { return request.eventLoop.makeSucceededFuture(response) }
        let answered = response
        return EventLoopFuture.andAllSucceed(durable, on: request.eventLoop).map { answered }
            .flatMapErrorThrowing { error in
                // As Kafka answers: a lost lease is NOT_LEADER_OR_FOLLOWER (nothing landed; look
                // the leader up again), data appended whose commit is not confirmed yet is
                // REQUEST_TIMED_OUT (it may still land, as an acks=all write past its timeout),
                // a failed write KAFKA_STORAGE_ERROR. librdkafka retries all three.
                let code: ErrorCode = switch error {
                case StorageError.notLeader: .notLeaderOrFollower
                case StorageError.outcomeUnknown: .requestTimedOut
                default: .kafkaStorageError
                }
                self.logger.error("flush failed; answering \(code.name)", metadata: ["error": "\(error)"])
                var failed = answered
                for i in failed.responses.indices {
                    for j in failed.responses[i].partitionResponses.indices {
                        failed.responses[i].partitionResponses[j].errorCode = code.rawValue
                    }
                }
                return failed
            }
    }

    /// Whether any partition's first batch has the transactional attribute bit; a client sends one
    /// producer's batches in a request, so the first says what they all are.
    private static func carriesTransactionalBatches(_ req: ProduceRequest) -> Bool {
        req.topicData.contains { t in
            t.partitionData.contains { p in
                guard let records = p.records else { return false }
                return (try? RecordBatchHeader(reading: records, at: records.readerIndex))?.isTransactional ?? false
            }
        }
    }

    struct ProduceError: Error {
        var code: ErrorCode
        var message: String
        /// KIP-467 per-record errors: the index of each refused record in its batch.
        var recordErrors: [(index: Int32, message: String)] = []
    }

    /// What one partition's append produced.
    private struct Appended {
        var baseOffset: Int64
        /// The offset the acknowledgement waits for under the `always` flush policy.
        var durableUpTo: Int64
        var logAppendTime: Int64?
        /// False for a producer's retry of a batch already in the log.
        var isNew: Bool
        var bytes = 0
        var records = 0
    }

    /// Validates one partition's record set and appends it; batches with a producer id go through
    /// the partition's producer-state table, which turns a retry into the original offsets.
    private func append(
        _ records: ByteBuffer?, to log: any PartitionLog, topic: TopicMetadata, partition: Int32, requestVersion: Int16,
        coordinatorAsked: Bool, verifiedRemotely: ProducerStateTable.VerificationGuard? = nil
    ) throws -> Appended {
        guard var records, records.readableBytes > 0 else {
            throw ProduceError(code: .invalidRecord, message: "the partition's record set is empty")
        }
        let topicConfig = Self.topicConfig(topic.configs)
        let headers: [RecordBatchHeader]
        do {
            headers = try RecordBatchValidator.validate(
                records, maxBatchSize: topicConfig.maxMessageBytes,
                requireKeys: topicConfig.isCompacted,
                maxUncompressedBytes: config.maxRequestSize)
        } catch {
            throw ProduceError(code: error.errorCode, message: "\(error)", recordErrors: error.recordErrors)
        }
        var logAppendTime: Int64?
        if topicConfig.messageTimestampType == .logAppendTime {
            let now = clock()
            var position = records.readerIndex
            for header in headers {
                RecordBatch.setLogAppendTime(now, in: &records, at: position)
                position += header.totalSize
            }
            logAppendTime = now
        }
        // Produce v3+ carries exactly one batch per partition (the validator enforces it).
        let header = headers[0]
        guard header.hasProducerId, let table = try producers.producers(topic: topic, partition: partition) else {
            let result = try log.append(records)
            metrics.batchesAppended(headers.count)
            return Appended(
                baseOffset: result.baseOffset, durableUpTo: result.logEndOffset, logAppendTime: logAppendTime, isNew: true,
                bytes: records.readableBytes, records: headers.reduce(0) { $0 + Int($1.recordCount) })
        }
        // The guard is taken before asking the coordinator, so a marker written between the answer
        // and the append (ending the transaction that was verified) makes the append fail.
        // One the coordinator on another broker allowed comes with the guard taken before asking it.
        let verification = !header.isTransactional ? nil
            : verifiedRemotely ?? table.startVerification(producerId: header.producerId)
        if header.isTransactional, verifiedRemotely == nil,
            let failure = transactions.verify(
                producerId: header.producerId, producerEpoch: header.producerEpoch,
                partition: TopicPartitionKey(topic.name, partition))
        {
            let code = failure.transactionalWriteErrorCode(
                coordinatorVerifiedOnly: requestVersion == 11 && coordinatorAsked, clientKnowsAbortable: requestVersion >= 11)
            throw ProduceError(code: code, message: "transactional write refused: \(failure)")
        }
        do {
            switch try table.append(records, header: header, verification: verification) {
            case .appended(let result):
                metrics.batchesAppended(headers.count)
                return Appended(
                    baseOffset: result.baseOffset, durableUpTo: result.logEndOffset, logAppendTime: logAppendTime, isNew: true,
                    bytes: records.readableBytes, records: Int(header.recordCount))
            case .duplicate(let firstOffset, let lastOffset):
                logger.debug("duplicate batch answered with its original offsets", metadata: [
                    "topic": "\(topic.name)", "partition": "\(partition)", "producer": "\(header.producerId)",
                    "sequence": "\(header.baseSequence)", "offset": "\(firstOffset)",
                ])
                return Appended(baseOffset: firstOffset, durableUpTo: lastOffset + 1, logAppendTime: nil, isNew: false)
            }
        } catch let rejection as ProducerStateTable.Rejection {
            throw ProduceError(code: rejection.errorCode, message: "\(rejection)")
        }
    }
}
