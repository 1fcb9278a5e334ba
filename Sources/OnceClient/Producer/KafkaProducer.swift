import KafkaProtocol
import Logging
import Metrics
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A Kafka producer: batches records per partition, sends them to partition leaders with up to
/// five batches in flight per partition, and retries failures. Idempotent by default, so a
/// retried batch is stored once; with a transactional id it also writes transactions.
///
/// `send` waits for the broker's acknowledgement; `enqueue` returns once the record is buffered
/// and reports the outcome to a callback, which is how high-throughput callers keep many records
/// in flight. Both wait when `bufferMemory` is full.
public actor KafkaProducer {
    public typealias DeliveryHandler = @Sendable (Result<RecordMetadata, any Error>) -> Void
    public typealias IndexedDeliveryHandler = @Sendable (Int, Result<RecordMetadata, any Error>) -> Void

    public nonisolated let configuration: ProducerConfiguration
    let client: KafkaClient
    let logger: Logger
    private let ownsClient: Bool

    /// A class so appending a record mutates in place instead of copying the batch's arrays.
    private final class OpenBatch {
        let id: Int
        let topicPartition: TopicPartition
        var builder: RecordBatchBuilder
        var deliveries: [DeliveryRun] = []
        var timestamps: [Int64] = []
        let created: ContinuousClock.Instant

        init(id: Int, topicPartition: TopicPartition, builder: RecordBatchBuilder, created: ContinuousClock.Instant) {
            self.id = id
            self.topicPartition = topicPartition
            self.builder = builder
            self.created = created
        }

        func append(_ delivery: Delivery) {
            if deliveries.isEmpty || !deliveries[deliveries.count - 1].absorb(delivery) {
                deliveries.append(DeliveryRun(first: delivery, count: 1))
            }
        }
    }

    private struct PendingBatch {
        var topicPartition: TopicPartition
        var builder: RecordBatchBuilder
        var deliveries: [DeliveryRun]
        var timestamps: [Int64]
        var deadline: ContinuousClock.Instant
        var bytes: Int
    }

    private var openBatches: [TopicPartition: OpenBatch] = [:]
    /// The batch the previous record went to: consecutive records usually share a partition,
    /// and comparing against it is cheaper than hashing the topic name per record.
    private var lastOpenBatch: OpenBatch?
    /// Whether `lastOpenBatch` is its topic's sticky partition, so the next unkeyed record of
    /// that topic belongs there too.
    private var lastOpenBatchIsSticky = false
    private var nextBulkCall = 0
    private var pending: [Int: PendingBatch] = [:]
    /// Kept for every partition ever written, even when empty: the queue holds the partition's
    /// next sequence number, which must survive quiet periods.
    private var queues: [TopicPartition: PartitionSendQueue] = [:]
    private var nextBatchId = 0
    private var partitionCounts: [String: Int32] = [:]
    private var stickyPartitions: [String: Int32] = [:]
    private var roundRobin: [String: Int32] = [:]
    private var leaders: [TopicPartition: Int32] = [:]
    private var connections: [Int32: KafkaConnection] = [:]
    private var connecting: Set<Int32> = []
    private var metadataRefreshing = false
    private var retryAfter: [TopicPartition: ContinuousClock.Instant] = [:]
    private var wakeTimer: Task<Void, Never>?
    private var wakeAt: ContinuousClock.Instant?
    private var lingerTimer: Task<Void, Never>?
    private var bufferedBytes = 0
    private var spaceWaiters: [CheckedContinuation<Void, Never>] = []
    private var drainWaiters: [CheckedContinuation<Void, Never>] = []
    private var isClosed = false

    /// The identity idempotence and transactions stamp on batches.
    private(set) var producerId: Int64 = -1
    private(set) var producerEpoch: Int16 = -1
    /// Set when the broker lost our sequence state or a batch failed for good: sending stops,
    /// in-flight batches drain, then InitProducerId bumps the epoch and sequences restart.
    private var epochBumpNeeded = false
    private var epochBumping = false
    private var initializingProducerId = false

    var transaction = TransactionStateMachine()
    private var addingPartitions = false
    /// The transaction protocol agreed with the coordinator at the last InitProducerId.
    public internal(set) var transactionProtocol = TransactionProtocol.v1

    private var metrics: ProducerMetrics

    private init(configuration: ProducerConfiguration, client: KafkaClient, ownsClient: Bool, logger: Logger) {
        self.configuration = configuration
        self.metrics = ProducerMetrics(clientId: configuration.client.clientId)
        self.client = client
        self.ownsClient = ownsClient
        self.logger = logger
    }

    /// A producer that connects when it first needs a broker and keeps reconnecting, as a
    /// `Service` in a `ServiceGroup` should: made before its broker is up, it waits for it
    /// (up to `maxBlock` per `send`) instead of failing. An idempotent producer obtains its id
    /// in the background; a transactional one does so in `initTransactions`. Throws only for
    /// settings Kafka's producer rejects too.
    public init(configuration: ProducerConfiguration, logger: Logger = Logger(label: "once.producer")) throws(KafkaUsageError) {
        try configuration.validate()
        let client = try KafkaClient(bootstrapServers: configuration.bootstrapServers, configuration: configuration.client)
        self.init(configuration: configuration, client: client, ownsClient: true, logger: logger)
    }

    /// Connects to the cluster and, for an idempotent or transactional producer, obtains a
    /// producer id. A transactional producer thereby fences older producers with its id.
    /// Fails when no broker answers; `init(configuration:logger:)` waits for one instead.
    public static func connect(
        configuration: ProducerConfiguration, logger: Logger = Logger(label: "once.producer")
    ) async throws -> KafkaProducer {
        try configuration.validate()
        let client = try await KafkaClient.connect(
            bootstrapServers: configuration.bootstrapServers, configuration: configuration.client)
        let producer = KafkaProducer(configuration: configuration, client: client, ownsClient: true, logger: logger)
        do {
            try await producer.initialize()
        } catch {
            await client.close()
            throw error
        }
        return producer
    }

    private func initialize() async throws {
        if configuration.transactionalId != nil {
            try await initTransactions()
        } else if configuration.enableIdempotence {
            try await initProducerId(bump: false)
        }
    }

    // MARK: Sending

    /// Sends one record and waits until the broker has it.
    @discardableResult
    public func send(_ message: ProducerMessage) async throws -> RecordMetadata {
        let promise = MultiThreadedEventLoopGroup.singleton.any().makePromise(of: RecordMetadata.self)
        try await enqueue(message) { promise.completeWith($0) }
        return try await promise.futureResult.get()
    }

    /// Buffers one record and returns; `onDelivery` runs once the broker acknowledged it or it
    /// failed for good. Throws at once for a topic that does not exist, a closed producer, or a
    /// transactional producer outside a transaction.
    public func enqueue(_ message: ProducerMessage, onDelivery: @escaping DeliveryHandler) async throws {
        let delivery = Delivery.single(onDelivery)
        if try !enqueueNow(message, delivery: delivery, now: nil) {
            try await enqueueWaiting(message, delivery: delivery)
        }
    }

    /// Buffers several records with one call into the producer, which saves the per-call hop
    /// when a caller has records at hand (librdkafka's produce_batch); `onDelivery` receives
    /// each record's index in `messages`. Records keep their order.
    public func enqueue(
        contentsOf messages: [ProducerMessage],
        onDelivery: @escaping IndexedDeliveryHandler
    ) async throws {
        nextBulkCall += 1
        let call = nextBulkCall
        // Records handed over together share a clock reading, renewed after any wait and every
        // 256 records so a long array still gets current timestamps.
        var now = Self.nowMillis()
        for index in messages.indices {
            let delivery = Delivery.indexed(onDelivery, call: call, index: index)
            if try !enqueueNow(messages[index], delivery: delivery, now: now) {
                try await enqueueWaiting(messages[index], delivery: delivery)
                now = Self.nowMillis()
            } else if index % 256 == 255 {
                now = Self.nowMillis()
            }
        }
    }

    /// Appends the record unless it must wait for its topic's metadata or for buffer space;
    /// then it returns false having changed nothing. Synchronous, so the common case costs no
    /// executor hop per record.
    private func enqueueNow(_ message: ProducerMessage, delivery: Delivery, now: Int64?) throws -> Bool {
        guard !isClosed else { throw KafkaClientError(.unsupportedFeature, "the producer is closed") }
        let size = RecordBatchBuilder.estimatedSize(key: message.key, value: message.value, headers: message.headers)
        guard bufferedBytes == 0 || bufferedBytes + size <= configuration.bufferMemory,
            let partition = try partitionFromCache(message)
        else { return false }
        try append(message, to: partition, size: size, delivery: delivery, timestamp: message.timestamp ?? now ?? Self.nowMillis())
        return true
    }

    private func enqueueWaiting(_ message: ProducerMessage, delivery: Delivery) async throws {
        guard !isClosed else { throw KafkaClientError(.unsupportedFeature, "the producer is closed") }
        let partition: Int32
        if let known = try partitionFromCache(message) {
            partition = known
        } else {
            try await waitForPartitionCount(message.topic)
            partition = try partitionFromCache(message)!
        }
        let size = RecordBatchBuilder.estimatedSize(key: message.key, value: message.value, headers: message.headers)
        while bufferedBytes > 0, bufferedBytes + size > configuration.bufferMemory {
            await withCheckedContinuation { spaceWaiters.append($0) }
        }
        guard !isClosed else { throw KafkaClientError(.unsupportedFeature, "the producer is closed") }
        try append(message, to: partition, size: size, delivery: delivery, timestamp: message.timestamp ?? Self.nowMillis())
    }

    private func append(
        _ message: ProducerMessage, to partition: Int32, size: Int, delivery: Delivery, timestamp: Int64
    ) throws {
        let tp = TopicPartition(message.topic, partition)
        if configuration.transactionalId != nil {
            if try transaction.recordAppended(to: tp) { addPendingPartitions() }
        }
        var open: OpenBatch?
        if let last = lastOpenBatch, last.topicPartition == tp {
            open = last
        } else {
            open = openBatches[tp]
        }
        var stillSticky = message.partition == nil && message.key == nil && configuration.partitioner == .murmur2Sticky
        if let full = open, full.builder.sizeInBytes + size > configuration.batchSize {
            closeBatch(tp)
            open = nil
            // Closing moved the topic's sticky partition elsewhere; this record stays put.
            stillSticky = false
        }
        let batch: OpenBatch
        if let open {
            batch = open
        } else {
            nextBatchId += 1
            batch = OpenBatch(
                id: nextBatchId, topicPartition: tp,
                builder: RecordBatchBuilder(capacity: min(configuration.batchSize, 64 * 1024)), created: .now)
            openBatches[tp] = batch
            scheduleLinger()
        }
        lastOpenBatch = batch
        lastOpenBatchIsSticky = stillSticky
        batch.builder.append(key: message.key, value: message.value, headers: message.headers, timestamp: timestamp)
        batch.append(delivery)
        batch.timestamps.append(timestamp)
        bufferedBytes += size
        if batch.builder.sizeInBytes >= configuration.batchSize {
            closeBatch(tp)
            pump()
        }
    }

    /// Sends everything buffered now, ignoring linger, and waits until each record is
    /// acknowledged or has failed.
    public func flush() async {
        for tp in Array(openBatches.keys) { closeBatch(tp) }
        pump()
        while !isDrained {
            await withCheckedContinuation { drainWaiters.append($0) }
        }
    }

    /// Flushes, then closes the connections. Records enqueued afterwards fail.
    public func close() async {
        guard !isClosed else { return }
        await flush()
        isClosed = true
        lingerTimer?.cancel()
        wakeTimer?.cancel()
        for waiter in spaceWaiters { waiter.resume() }
        spaceWaiters = []
        if ownsClient { await client.close() }
    }

    /// The partitions of `topic`, from the cluster's metadata (cached).
    public func partitionCount(_ topic: String) async throws -> Int32 {
        if let count = partitionCounts[topic] { return count }
        let metadata = try await client.metadata(topics: [topic], allowAutoTopicCreation: true)
        apply(metadata)
        guard let topicMetadata = metadata.topic(topic) else {
            throw KafkaError(.unknownTopicOrPartition, message: "topic '\(topic)'")
        }
        if let error = topicMetadata.error { throw error }
        guard let count = partitionCounts[topic] else {
            throw KafkaError(.unknownTopicOrPartition, message: "topic '\(topic)' has no partitions")
        }
        return count
    }

    /// The topic's partition count, waiting up to `maxBlock` while no broker can be reached
    /// (Kafka's producer blocks on metadata the same way), so a record sent while the broker
    /// restarts waits for it rather than failing.
    private func waitForPartitionCount(_ topic: String) async throws {
        let deadline = ContinuousClock.now + configuration.maxBlock
        var attempt = 0
        while true {
            do {
                _ = try await partitionCount(topic)
                return
            } catch let error as KafkaClientError
                where Self.isUnreachable(error) && ContinuousClock.now < deadline && !isClosed
            {
                attempt += 1
                logger.debug("no broker for metadata, retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: Self.reconnectBackoff(attempt: attempt, base: configuration.retryBackoff))
            }
        }
    }

    /// The failures a reconnect can cure.
    static func isUnreachable(_ error: KafkaClientError) -> Bool {
        error.kind == .cannotConnect || error.kind == .connectionClosed || error.kind == .requestTimedOut
    }

    /// `base` doubling per attempt up to 1 s, as librdkafka's reconnect.backoff.max.ms caps it.
    static func reconnectBackoff(attempt: Int, base: Duration) -> Duration {
        min(.seconds(1), base * (1 << min(max(attempt - 1, 0), 6)))
    }

    private var isDrained: Bool { openBatches.isEmpty && pending.isEmpty }

    /// The partition for `message`, or nil while its topic's partition count is unknown.
    private func partitionFromCache(_ message: ProducerMessage) throws -> Int32? {
        if lastOpenBatchIsSticky, let batch = lastOpenBatch, message.partition == nil, message.key == nil,
            batch.topicPartition.topic == message.topic
        {
            return batch.topicPartition.partition
        }
        guard let count = partitionCounts[message.topic] else { return nil }
        if let partition = message.partition {
            guard partition >= 0, partition < count else {
                throw KafkaError(.unknownTopicOrPartition, message: "\(message.topic) has no partition \(partition)")
            }
            return partition
        }
        if let key = message.key {
            return Partitioner.partition(forKey: key, partitionCount: count)
        }
        switch configuration.partitioner {
        case .murmur2Sticky:
            if let sticky = stickyPartitions[message.topic], sticky < count { return sticky }
            let chosen = Int32.random(in: 0..<count)
            stickyPartitions[message.topic] = chosen
            return chosen
        case .murmur2RoundRobin:
            let next = ((roundRobin[message.topic] ?? -1) + 1) % count
            roundRobin[message.topic] = next
            return next
        }
    }

    private func closeBatch(_ tp: TopicPartition) {
        guard let batch = openBatches.removeValue(forKey: tp) else { return }
        if lastOpenBatch === batch { lastOpenBatch = nil }
        pending[batch.id] = PendingBatch(
            topicPartition: tp, builder: batch.builder, deliveries: batch.deliveries, timestamps: batch.timestamps,
            deadline: batch.created + configuration.deliveryTimeout, bytes: batch.builder.sizeInBytes)
        queues[tp, default: PartitionSendQueue()].enqueue(id: batch.id, recordCount: batch.builder.recordCount)
        // KIP-480: an unkeyed stream moves to another partition once its batch is complete.
        if stickyPartitions[tp.topic] == tp.partition, let count = partitionCounts[tp.topic], count > 1 {
            var next = Int32.random(in: 0..<(count - 1))
            if next >= tp.partition { next += 1 }
            stickyPartitions[tp.topic] = next
        }
    }

    private func scheduleLinger() {
        guard lingerTimer == nil else { return }
        let oldest = openBatches.values.map(\.created).min() ?? .now
        let due = oldest + configuration.linger
        lingerTimer = Task { [weak self] in
            try? await Task.sleep(until: due, clock: .continuous)
            await self?.lingerExpired()
        }
    }

    private func lingerExpired() {
        lingerTimer = nil
        let now = ContinuousClock.now
        for (tp, batch) in openBatches where batch.created + configuration.linger <= now {
            closeBatch(tp)
        }
        if !openBatches.isEmpty { scheduleLinger() }
        pump()
    }

    // MARK: The send loop

    /// Sends every batch that may go now. Called after anything that could unblock a batch:
    /// a closed batch, an answer, a connection, metadata, a backoff running out.
    func pump() {
        guard !isClosed || !pending.isEmpty else { return }
        if configuration.isIdempotent, producerId < 0 || epochBumping {
            // Batches that never went out still fail at their delivery timeout while no
            // producer id can be had (the broker down), instead of waiting without end.
            expireQueued(now: .now)
            if producerId < 0, configuration.transactionalId == nil { startProducerIdInit() }
            return
        }
        if epochBumpNeeded {
            if queues.values.allSatisfy({ $0.inFlight.isEmpty }) { startEpochBump() }
            return
        }
        let now = ContinuousClock.now
        let maxInFlight = configuration.isIdempotent ? configuration.maxInFlightPerPartition : max(1, configuration.maxInFlightPerPartition)
        var progressed = true
        var nextWake: ContinuousClock.Instant?
        var missingLeaders = false
        expireQueued(now: now)
        while progressed {
            progressed = false
            var round: [Int32: [(TopicPartition, PartitionSendQueue.Entry)]] = [:]
            for (tp, queue) in queues where queue.canSend(maxInFlight: maxInFlight) {
                if configuration.transactionalId != nil, !transaction.isAdded(tp) { continue }
                if let after = retryAfter[tp] {
                    if after > now {
                        nextWake = min(nextWake ?? after, after)
                        continue
                    }
                    retryAfter[tp] = nil
                }
                guard let leader = leaders[tp], leader >= 0 else {
                    missingLeaders = true
                    continue
                }
                guard connections[leader]?.isActive == true else {
                    connect(leader)
                    continue
                }
                guard let entry = queues[tp]!.takeNext(maxInFlight: maxInFlight) else { continue }
                round[leader, default: []].append((tp, entry))
                progressed = true
            }
            for (leader, batches) in round {
                send(batches, to: leader)
            }
        }
        if missingLeaders { refreshMetadata() }
        if let nextWake { scheduleWake(at: nextWake) }
    }

    private func send(_ batches: [(TopicPartition, PartitionSendQueue.Entry)], to leader: Int32) {
        let connection = connections[leader]!
        var request = ProduceRequest()
        request.transactionalId = configuration.transactionalId
        request.acks = configuration.acks.rawValue
        request.timeoutMs = configuration.requestTimeout.milliseconds
        var byTopic: [String: [ProduceRequest.PartitionProduceData]] = [:]
        var sent: [(TopicPartition, PartitionSendQueue.Entry)] = []
        for (tp, entry) in batches {
            let batch = pending[entry.id]!
            let stamp = configuration.isIdempotent
                ? RecordBatchBuilder.ProducerStamp(
                    producerId: producerId, producerEpoch: producerEpoch, baseSequence: entry.baseSequence!,
                    isTransactional: configuration.transactionalId != nil)
                : .none
            do {
                var data = ProduceRequest.PartitionProduceData()
                data.index = tp.partition
                data.records = try batch.builder.build(stamp: stamp, compression: configuration.compression)
                byTopic[tp.topic, default: []].append(data)
                sent.append((tp, entry))
                if entry.attempts > 1 { metrics.retries.increment() }
            } catch {
                queues[tp]!.failedPermanently(id: entry.id)
                finish(entry.id, with: .failure(error))
            }
        }
        guard !sent.isEmpty else { return }
        request.topicData = byTopic.map { topic, partitions in
            var data = ProduceRequest.TopicProduceData()
            data.name = topic
            data.partitionData = partitions
            return data
        }
        metrics.batchesSent.increment(by: sent.count)
        if configuration.acks == .none {
            Task { [weak self] in
                let result: Result<ProduceResponse?, any Error>
                do {
                    try await connection.sendWithoutResponse(request)
                    result = .success(nil)
                } catch {
                    result = .failure(error)
                }
                await self?.handle(result, for: sent, leader: leader)
            }
            return
        }
        do {
            let started = ContinuousClock.now
            // A transactional write's version says which transaction protocol it follows.
            let version = configuration.transactionalId == nil ? nil
                : transactionProtocol.version(
                    for: ProduceRequest.self, in: connection.apiVersions, cap: transactionProtocol.produce)
            let response = try connection.start(request, version: version, brokerWait: configuration.requestTimeout)
            Task { [weak self, requestLatency = metrics.requestLatency] in
                let result: Result<ProduceResponse?, any Error>
                do {
                    result = .success(try await response.get())
                    requestLatency.recordInterval(since: started)
                } catch {
                    result = .failure(error)
                }
                await self?.handle(result, for: sent, leader: leader)
            }
        } catch {
            Task { [weak self] in await self?.handle(.failure(error), for: sent, leader: leader) }
        }
    }

    private func handle(
        _ result: Result<ProduceResponse?, any Error>, for batches: [(TopicPartition, PartitionSendQueue.Entry)],
        leader: Int32
    ) {
        switch result {
        case .failure(let error):
            if let connection = connections[leader], !connection.isActive { connections[leader] = nil }
            logger.debug("produce to broker \(leader) failed, will retry", metadata: ["error": "\(error)"])
            for (tp, entry) in batches {
                retry(tp, entry, reason: error)
            }
            refreshMetadata()
        case .success(nil):
            for (tp, entry) in batches {
                queues[tp]!.acknowledged(id: entry.id)
                complete(entry.id, baseOffset: -1, logAppendTime: -1)
            }
        case .success(let response?):
            var answered: [TopicPartition: ProduceResponse.PartitionProduceResponse] = [:]
            for topic in response.responses {
                for partition in topic.partitionResponses {
                    answered[TopicPartition(topic.name, partition.index)] = partition
                }
            }
            for (tp, entry) in batches {
                guard let answer = answered[tp] else {
                    retry(tp, entry, reason: KafkaClientError(.unexpectedResponse, "Produce response does not mention \(tp)"))
                    continue
                }
                handle(answer, tp: tp, entry: entry)
            }
        }
        pump()
        signalIfDrained()
    }

    private func handle(_ answer: ProduceResponse.PartitionProduceResponse, tp: TopicPartition, entry: PartitionSendQueue.Entry) {
        guard let error = KafkaError(errorCode: answer.errorCode, message: answer.errorMessage),
            error.code != .duplicateSequenceNumber
        else {
            queues[tp]!.acknowledged(id: entry.id)
            complete(entry.id, baseOffset: answer.baseOffset, logAppendTime: answer.logAppendTimeMs)
            return
        }
        let transactional = configuration.transactionalId != nil
        switch error.code {
        case .outOfOrderSequenceNumber, .unknownProducerId:
            // Out of order behind an earlier failure is expected and resolves by resending in
            // order; out of order at the head, or an unknown producer, means the broker lost
            // our state (KIP-360): bump the epoch and renumber.
            let unexplained = error.code == .unknownProducerId || queues[tp]!.isOldestUnacknowledged(entry.id)
            if unexplained, transactional {
                fail(tp, entry, error)
            } else {
                if unexplained {
                    logger.warning("\(tp): \(error); bumping the producer epoch", metadata: ["baseSequence": "\(entry.baseSequence ?? -1)", "attempt": "\(entry.attempts)"])
                    epochBumpNeeded = true
                }
                retry(tp, entry, reason: error, backoff: !unexplained)
            }
        case .invalidProducerEpoch, .producerFenced:
            if transactional {
                fail(tp, entry, error)
            } else {
                epochBumpNeeded = true
                retry(tp, entry, reason: error, backoff: false)
            }
        default:
            if error.isRetriable || [19, 20].contains(error.code.rawValue) {
                if [.notLeaderOrFollower, .leaderNotAvailable, .unknownTopicOrPartition].contains(error.code) {
                    leaders[tp] = nil
                }
                retry(tp, entry, reason: error)
            } else {
                fail(tp, entry, error)
            }
        }
    }

    private func retry(_ tp: TopicPartition, _ entry: PartitionSendQueue.Entry, reason: any Error, backoff: Bool = true) {
        if let batch = pending[entry.id], ContinuousClock.now >= batch.deadline {
            fail(tp, entry, KafkaClientError(.requestTimedOut, "\(tp): delivery timed out after retries; last error: \(reason)"))
            return
        }
        queues[tp]!.failedRetriably(id: entry.id)
        if backoff { retryAfter[tp] = .now + configuration.retryBackoff }
    }

    /// The batch will not be stored. Its sequence numbers leave a gap the broker would reject,
    /// so an idempotent producer renumbers (epoch bump); a transaction must abort.
    private func fail(_ tp: TopicPartition, _ entry: PartitionSendQueue.Entry, _ error: any Error) {
        queues[tp]!.failedPermanently(id: entry.id)
        logger.error("\(tp): batch failed", metadata: ["error": "\(error)"])
        if configuration.transactionalId != nil {
            transaction.produceFailed(error)
        } else if configuration.isIdempotent, !queues[tp]!.isEmpty {
            epochBumpNeeded = true
        }
        finish(entry.id, with: .failure(error))
    }

    private func complete(_ id: Int, baseOffset: Int64, logAppendTime: Int64) {
        guard let batch = pending.removeValue(forKey: id) else { return }
        release(batch.bytes)
        let topic = metrics.topic(batch.topicPartition.topic)
        topic.recordsSent.increment(by: Int(batch.builder.recordCount))
        topic.bytesSent.increment(by: batch.bytes)
        topic.deliveryLatency.recordInterval(since: batch.deadline - configuration.deliveryTimeout)
        var record = 0
        for run in batch.deliveries {
            run.deliver(startingAt: record) { i in
                .success(RecordMetadata(
                    topicPartition: batch.topicPartition, offset: baseOffset < 0 ? -1 : baseOffset + Int64(i),
                    timestamp: logAppendTime >= 0 ? logAppendTime : batch.timestamps[i]))
            }
            record += run.count
        }
    }

    private func finish(_ id: Int, with result: Result<Never, any Error>) {
        guard let batch = pending.removeValue(forKey: id), case .failure(let error) = result else { return }
        release(batch.bytes)
        metrics.topic(batch.topicPartition.topic).recordErrors.increment(by: Int(batch.builder.recordCount))
        var record = 0
        for run in batch.deliveries {
            run.deliver(startingAt: record) { _ in .failure(error) }
            record += run.count
        }
    }

    /// Fails queued batches whose delivery timeout passed before they could even be sent (no
    /// leader, no connection).
    private func expireQueued(now: ContinuousClock.Instant) {
        for (tp, queue) in queues {
            for entry in queue.queued where entry.attempts == 0 {
                guard let batch = pending[entry.id], batch.deadline <= now else { continue }
                queues[tp]!.failedPermanently(id: entry.id)
                finish(entry.id, with: .failure(KafkaClientError(.requestTimedOut, "\(tp): delivery timed out")))
            }
        }
    }

    private func release(_ bytes: Int) {
        bufferedBytes -= bytes
        if bufferedBytes < configuration.bufferMemory, !spaceWaiters.isEmpty {
            let waiters = spaceWaiters
            spaceWaiters = []
            for waiter in waiters { waiter.resume() }
        }
    }

    private func signalIfDrained() {
        guard isDrained, !drainWaiters.isEmpty else { return }
        let waiters = drainWaiters
        drainWaiters = []
        for waiter in waiters { waiter.resume() }
    }

    private func scheduleWake(at instant: ContinuousClock.Instant) {
        if let wakeAt, wakeAt <= instant, wakeTimer != nil { return }
        wakeTimer?.cancel()
        wakeAt = instant
        wakeTimer = Task { [weak self] in
            try? await Task.sleep(until: instant, clock: .continuous)
            guard !Task.isCancelled else { return }
            await self?.woke()
        }
    }

    private func woke() {
        wakeTimer = nil
        wakeAt = nil
        pump()
        signalIfDrained()
    }

    // MARK: Metadata and connections

    private func apply(_ metadata: ClusterMetadata) {
        for topic in metadata.topics where topic.error == nil && !topic.partitions.isEmpty {
            partitionCounts[topic.name] = Int32(topic.partitions.count)
            for partition in topic.partitions {
                leaders[TopicPartition(topic.name, partition.partition)] = partition.leader
            }
        }
    }

    private func refreshMetadata() {
        guard !metadataRefreshing else { return }
        metadataRefreshing = true
        let topics = Array(Set(queues.keys.map(\.topic)).union(partitionCounts.keys))
        let backoff = configuration.retryBackoff
        Task { [weak self, client] in
            do {
                let metadata = try await client.metadata(topics: topics, allowAutoTopicCreation: true)
                await self?.metadataArrived(metadata)
            } catch {
                try? await Task.sleep(for: backoff)
                await self?.metadataArrived(nil)
            }
        }
    }

    private func metadataArrived(_ metadata: ClusterMetadata?) {
        metadataRefreshing = false
        if let metadata { apply(metadata) }
        pump()
        signalIfDrained()
    }

    private func connect(_ leader: Int32) {
        guard !connecting.contains(leader) else { return }
        connecting.insert(leader)
        let backoff = configuration.retryBackoff
        Task { [weak self, client] in
            do {
                let connection = try await client.connection(toNode: leader)
                await self?.connected(leader, connection)
            } catch {
                try? await Task.sleep(for: backoff)
                await self?.connected(leader, nil)
            }
        }
    }

    private func connected(_ leader: Int32, _ connection: KafkaConnection?) {
        connecting.remove(leader)
        if let connection { connections[leader] = connection } else { refreshMetadata() }
        pump()
        signalIfDrained()
    }

    // MARK: Producer id

    /// Obtains the idempotent producer's id in the background, retrying while no broker
    /// answers: the lazy path, for a producer made with `init` before its broker is up. A
    /// failure no retry cures fails the buffered records.
    func startProducerIdInit() {
        guard configuration.isIdempotent, configuration.transactionalId == nil, producerId < 0,
            !initializingProducerId, !epochBumping, !isClosed
        else { return }
        initializingProducerId = true
        Task { [weak self] in
            var attempt = 0
            while let self {
                do {
                    try await self.initProducerId(bump: false)
                    await self.producerIdInitFinished(nil)
                    return
                } catch let error as KafkaClientError where Self.isUnreachable(error) {
                    attempt += 1
                    guard await !self.isClosed else { return await self.producerIdInitFinished(error) }
                    try? await Task.sleep(for: Self.reconnectBackoff(attempt: attempt, base: self.configuration.retryBackoff))
                    await self.pump()
                } catch {
                    await self.producerIdInitFinished(error)
                    return
                }
            }
        }
    }

    private func producerIdInitFinished(_ error: (any Error)?) async {
        initializingProducerId = false
        if let error {
            logger.error("cannot obtain a producer id", metadata: ["error": "\(error)"])
            await discardUnsent(error)
        }
        pump()
    }

    private func startEpochBump() {
        guard !epochBumping else { return }
        epochBumping = true
        metrics.epochBumps.increment()
        Task { [weak self] in
            guard let self else { return }
            do {
                try await self.initProducerId(bump: true)
                await self.epochBumped()
            } catch {
                try? await Task.sleep(for: self.configuration.retryBackoff)
                await self.epochBumpFailed(error)
            }
        }
    }

    private func epochBumped() {
        epochBumping = false
        epochBumpNeeded = false
        for tp in queues.keys { queues[tp]!.resetSequences() }
        pump()
        signalIfDrained()
    }

    private func epochBumpFailed(_ error: any Error) {
        logger.warning("epoch bump failed, retrying", metadata: ["error": "\(error)"])
        epochBumping = false
        pump()
    }

    /// InitProducerId for an idempotent producer without a transactional id. With `bump` and a
    /// broker that speaks v3+, the current id and epoch are sent so the broker bumps the epoch
    /// (KIP-360); older brokers hand out a new id.
    func initProducerId(bump: Bool) async throws {
        var attempt = 0
        while true {
            attempt += 1
            do {
                let connection = try await client.liveBootstrap()
                let version = try connection.version(for: InitProducerIdRequest.self)
                var request = InitProducerIdRequest()
                request.transactionalId = nil
                request.transactionTimeoutMs = Int32.max
                if bump, version >= 3 {
                    request.producerId = producerId
                    request.producerEpoch = producerEpoch
                }
                let response = try await connection.send(request, version: version)
                if let error = KafkaError(errorCode: response.errorCode) {
                    if error.code == .invalidProducerEpoch || error.code == .producerFenced {
                        // The broker no longer knows this id at all; start afresh.
                        producerId = -1
                        producerEpoch = -1
                    }
                    throw error
                }
                producerId = response.producerId
                producerEpoch = response.producerEpoch
                logger.debug("producer id \(producerId) epoch \(producerEpoch)")
                pump()
                return
            } catch let error as KafkaError where error.isRetriable || error.code == .invalidProducerEpoch {
                if attempt >= 20 { throw error }
                try await Task.sleep(for: configuration.retryBackoff)
            }
        }
    }

    static func nowMillis() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }

    // MARK: Transaction support for the Transactions/ extension

    func setProducerIdentity(id: Int64, epoch: Int16) {
        producerId = id
        producerEpoch = epoch
        for tp in queues.keys where queues[tp]!.inFlight.isEmpty { queues[tp]!.resetSequences() }
        pump()
    }

    func forgetProducerIdentity() {
        producerId = -1
        producerEpoch = -1
    }

    /// Drops batches not yet sent (an abort), failing their records with `error`, and waits for
    /// the ones in flight.
    func discardUnsent(_ error: any Error) async {
        for tp in Array(openBatches.keys) { closeBatch(tp) }
        for (tp, queue) in queues {
            for entry in queue.queued {
                queues[tp]!.failedPermanently(id: entry.id)
                finish(entry.id, with: .failure(error))
            }
        }
        signalIfDrained()
        while !isDrained {
            await withCheckedContinuation { drainWaiters.append($0) }
        }
    }

    /// Runs AddPartitionsToTxn for partitions written in this transaction and not yet added.
    func addPendingPartitions() {
        guard !addingPartitions, !transaction.pendingPartitions.isEmpty else { return }
        addingPartitions = true
        let partitions = transaction.pendingPartitions
        Task { [weak self] in
            guard let self else { return }
            let error = await self.sendAddPartitions(partitions)
            await self.partitionsAdded(partitions, error: error)
        }
    }

    private func partitionsAdded(_ partitions: Set<TopicPartition>, error: KafkaError?) async {
        addingPartitions = false
        switch transaction.partitionsAdded(partitions, error: error) {
        case .success:
            break
        case .retry:
            try? await Task.sleep(for: configuration.retryBackoff)
        case .failed(let failure):
            for tp in partitions {
                for entry in queues[tp]?.queued ?? [] {
                    queues[tp]!.failedPermanently(id: entry.id)
                    finish(entry.id, with: .failure(failure))
                }
            }
        }
        addPendingPartitions()
        pump()
        signalIfDrained()
    }
}
