import KafkaProtocol
import Logging
import Metrics

/// A Kafka consumer: reads assigned partitions, or the partitions a consumer group gives it,
/// as an async sequence of records.
///
/// Fetching is driven by iteration: the next fetch starts when the records of the last one are
/// half consumed, so a slow loop body slows fetching instead of filling memory.
public actor KafkaConsumer {
    public nonisolated let configuration: ConsumerConfiguration
    let client: KafkaClient
    let logger: Logger

    /// Partitions read and the next offset of each; nil offset means "look it up".
    private(set) var positions: [TopicPartition: Int64?] = [:]
    private var buffered: [ConsumerRecord] = []
    private var prefetch: Task<[FetchedPartition], any Error>?
    private var prefetchPositions: [TopicPartition: Int64] = [:]
    /// Set when the prefetch with `prefetchId` has finished, so a poll can wait for it with a
    /// deadline instead of awaiting its value.
    private var prefetchId = 0
    private var prefetchDone = false
    /// Polls waiting for a fetch, a rejoin, an assignment or their deadline.
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private(set) var isClosed = false
    let rebalanceEvents: AsyncStream<RebalanceEvent>
    let rebalanceContinuation: AsyncStream<RebalanceEvent>.Continuation

    /// Group state, managed by the KafkaConsumer+Group extension.
    var group: GroupMemberState?
    var groupTask: Task<Void, Never>?
    /// A rejoin running in the background; its result is applied inside a poll, so the
    /// generation read right after a poll is the one its records were fetched under.
    var joinTask: Task<GroupJoinOutcome, any Error>?
    var joinDone = false
    var retainedPositions: RetainedPositions?
    var lastAutoCommit = ContinuousClock.now

    private var metrics: ConsumerMetrics

    private init(configuration: ConsumerConfiguration, client: KafkaClient, logger: Logger) {
        self.configuration = configuration
        self.client = client
        self.logger = logger
        self.metrics = ConsumerMetrics(clientId: configuration.client.clientId)
        (rebalanceEvents, rebalanceContinuation) = AsyncStream.makeStream(bufferingPolicy: .bufferingNewest(64))
    }

    /// A consumer that connects when iteration first needs a broker and reconnects after
    /// the broker goes away, as a `Service` in a `ServiceGroup` should: made before its
    /// broker is up, its `records` wait for it instead of failing.
    public init(configuration: ConsumerConfiguration, logger: Logger = Logger(label: "once.consumer")) throws(KafkaUsageError) {
        let client = try KafkaClient(bootstrapServers: configuration.bootstrapServers, configuration: configuration.client)
        self.init(configuration: configuration, client: client, logger: logger)
    }

    /// Connects before returning, for callers that want an unreachable cluster reported now.
    public static func connect(
        configuration: ConsumerConfiguration, logger: Logger = Logger(label: "once.consumer")
    ) async throws -> KafkaConsumer {
        let client = try await KafkaClient.connect(
            bootstrapServers: configuration.bootstrapServers, configuration: configuration.client)
        return KafkaConsumer(configuration: configuration, client: client, logger: logger)
    }

    /// The records of the assigned partitions, in offset order within each partition. Iterate
    /// it from one task only; it ends when the consumer is closed or fails for good (group
    /// errors such as a rebalance are retried inside).
    public nonisolated var records: ConsumerRecords { ConsumerRecords(consumer: self) }

    /// The records that arrive within `timeout`, or an empty array when none do: for loops that
    /// must also act on a clock (commit an open transaction, check for shutdown) without a
    /// background task around `records`. Returns as soon as any record is there, with all that
    /// are buffered. A rejoin or fetch still running at the deadline carries on in the
    /// background and serves the next poll. Throws `CancellationError` when the calling task
    /// is cancelled, and `connectionClosed` once the consumer is closed.
    ///
    /// `groupMetadata` read right after a poll is the generation its records were fetched
    /// under: a rebalance only takes effect inside a poll. Do not mix with iterating `records`.
    public func poll(timeout: Duration) async throws -> [ConsumerRecord] {
        guard let batch = try await nextBatch(until: .now + timeout) else {
            throw KafkaClientError(.connectionClosed, "the consumer is closed")
        }
        return batch
    }

    /// Partition assignments and revocations of a group member, in order.
    public nonisolated var events: AsyncStream<RebalanceEvent> { rebalanceEvents }

    // MARK: Manual assignment

    /// Reads exactly these partitions (no group), starting at committed offsets when a group
    /// id is configured, else by `autoOffsetReset`. Throws `KafkaUsageError` after `subscribe`.
    public func assign(_ partitions: [TopicPartition]) throws(KafkaUsageError) {
        guard group == nil else {
            throw KafkaUsageError(.assignAndSubscribe, "assign after subscribe: a consumer does one or the other")
        }
        setAssignment(partitions)
    }

    /// The partitions currently read.
    public var assignment: [TopicPartition] {
        positions.keys.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
    }

    /// Continues `partition` at `offset`; records already buffered for it are dropped.
    /// Throws `KafkaUsageError` for a partition the consumer does not read.
    public func seek(_ partition: TopicPartition, to offset: Int64) throws(KafkaUsageError) {
        guard positions[partition] != nil else {
            throw KafkaUsageError(.partitionNotAssigned, "seek on \(partition), which is not assigned")
        }
        discardBuffered { $0 == partition }
        positions[partition] = offset
    }

    public func seekToBeginning(_ partitions: [TopicPartition]) async throws {
        let offsets = try await client.listOffsets(Dictionary(uniqueKeysWithValues: partitions.map { ($0, .earliest) }))
        for (tp, offset) in offsets { try seek(tp, to: offset) }
    }

    public func seekToEnd(_ partitions: [TopicPartition]) async throws {
        let offsets = try await client.listOffsets(
            Dictionary(uniqueKeysWithValues: partitions.map { ($0, .latest) }), isolation: configuration.isolationLevel)
        for (tp, offset) in offsets { try seek(tp, to: offset) }
    }

    /// The offset of the next record to be returned for `partition`, once known.
    public func position(_ partition: TopicPartition) -> Int64? {
        guard let position = positions[partition] ?? nil else { return nil }
        let firstBuffered = buffered.first { $0.topicPartition == partition }?.offset
        return firstBuffered ?? position
    }

    /// Reads `partitions` from now on; a partition already read keeps its position, one in
    /// `keeping` starts there, any other is looked up.
    func setAssignment(_ partitions: [TopicPartition], keeping: [TopicPartition: Int64] = [:]) {
        let wanted = Set(partitions)
        discardBuffered { !wanted.contains($0) }
        var next: [TopicPartition: Int64?] = [:]
        for tp in wanted { next.updateValue(positions[tp] ?? keeping[tp], forKey: tp) }
        positions = next
        wakeWaiters()
    }

    /// Stops reading every partition and returns where each one was (buffered records not yet
    /// handed out count as unread).
    func releaseAssignment() -> [TopicPartition: Int64] {
        discardBuffered { _ in true }
        let held = positions.compactMapValues { $0 }
        positions = [:]
        return held
    }

    private func discardBuffered(_ matching: (TopicPartition) -> Bool) {
        // Rewind positions to the first dropped record so nothing is skipped.
        var rewind: [TopicPartition: Int64] = [:]
        for record in buffered where matching(record.topicPartition) && rewind[record.topicPartition] == nil {
            rewind[record.topicPartition] = record.offset
        }
        buffered.removeAll { matching($0.topicPartition) }
        for (tp, offset) in rewind where positions[tp] != nil { positions[tp] = offset }
        prefetch?.cancel()
        prefetch = nil
    }

    // MARK: Fetching

    /// The next records to hand out; waits for data until `deadline` (forever when nil) and
    /// returns an empty array then. Returns nil once closed.
    func nextBatch(until deadline: ContinuousClock.Instant? = nil) async throws -> [ConsumerRecord]? {
        var failures = 0
        while !isClosed {
            try Task.checkCancellation()
            let settled = try await groupTick()
            if !buffered.isEmpty {
                let batch = buffered
                buffered = []
                startPrefetch()
                return batch
            }
            if let deadline, deadline <= .now { return [] }
            if !settled || positions.isEmpty {
                await waitForProgress(until: deadline)
                continue
            }
            do {
                try await resolveMissingPositions()
            } catch {
                // A coordinator move or a rebalance while looking up committed offsets.
                let recovery = GroupErrorRecovery(error)
                guard recovery != .fail else { throw error }
                if recovery == .rejoin || recovery == .rejoinAsNewMember { group?.needsJoin = true }
                failures += 1
                logger.debug("offset lookup failed, retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: GroupErrorRecovery.backoff(attempt: failures))
                continue
            }
            startPrefetch()
            guard let task = prefetch else {
                await waitForProgress(until: deadline)
                continue
            }
            if !prefetchDone {
                await waitForProgress(until: deadline)
                continue
            }
            let fetched: [FetchedPartition]
            do {
                fetched = try await task.value
            } catch is CancellationError {
                if prefetch == task { prefetch = nil }
                continue
            } catch {
                if prefetch == task { prefetch = nil }
                logger.debug("fetch failed, retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: .milliseconds(100))
                continue
            }
            guard prefetch == task else { continue }
            prefetch = nil
            try await absorb(fetched)
        }
        return nil
    }

    /// Suspends until something a poll waits for happens (a fetch or rejoin finished, the
    /// assignment changed, the consumer closed), the deadline passes, 200 ms pass (for the
    /// auto-commit clock), or the task is cancelled. Wake-ups may be spurious; callers re-check.
    private func waitForProgress(until deadline: ContinuousClock.Instant?) async {
        let limit = min(deadline ?? .now + .milliseconds(200), .now + .milliseconds(200))
        guard limit > .now, !Task.isCancelled else { return }
        let timer = Task { [weak self] in
            // Cancelled once this wait is over: waking then would cut the next wait short, and
            // each short wait cancels its own timer, so an idle consumer would spin.
            guard (try? await Task.sleep(until: limit, clock: .continuous)) != nil else { return }
            await self?.wakeWaiters()
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { waiters.append($0) }
        } onCancel: {
            Task { [weak self] in await self?.wakeWaiters() }
        }
        timer.cancel()
    }

    func wakeWaiters() {
        let waiting = waiters
        waiters = []
        for waiter in waiting { waiter.resume() }
    }

    private func prefetchFinished(_ id: Int) {
        if id == prefetchId { prefetchDone = true }
        wakeWaiters()
    }

    private func startPrefetch() {
        guard prefetch == nil, !isClosed else { return }
        var fetchPositions: [FetchPosition] = []
        for (tp, position) in positions {
            guard let position else { continue }
            fetchPositions.append(FetchPosition(tp, offset: position, maxBytes: configuration.maxPartitionFetchBytes))
        }
        guard !fetchPositions.isEmpty else { return }
        prefetchPositions = Dictionary(uniqueKeysWithValues: fetchPositions.map { ($0.topicPartition, $0.offset) })
        let configuration = configuration
        metrics.fetches.increment()
        prefetchId += 1
        prefetchDone = false
        let id = prefetchId
        prefetch = Task { [weak self, client, fetchLatency = metrics.fetchLatency] in
            do {
                let started = ContinuousClock.now
                let fetched = try await client.fetch(
                    fetchPositions, isolation: configuration.isolationLevel, maxWait: configuration.fetchMaxWait,
                    minBytes: configuration.fetchMinBytes, maxBytes: configuration.fetchMaxBytes)
                fetchLatency.recordInterval(since: started)
                await self?.prefetchFinished(id)
                return fetched
            } catch {
                await self?.prefetchFinished(id)
                throw error
            }
        }
    }

    private func absorb(_ fetched: [FetchedPartition]) async throws {
        let reader = RecordSetReader(
            isolation: configuration.isolationLevel, maxUncompressedBatchBytes: configuration.maxUncompressedBatchBytes)
        var outOfRange: [TopicPartition] = []
        for partition in fetched {
            let tp = partition.topicPartition
            // Ignore answers for partitions moved since the fetch started.
            guard let sent = prefetchPositions[tp], let current = positions[tp], current == sent else { continue }
            if let error = partition.error {
                if error.code == .offsetOutOfRange {
                    outOfRange.append(tp)
                } else {
                    logger.debug("\(tp): fetch error \(error)")
                }
                continue
            }
            let result = try reader.read(partition, from: sent)
            positions[tp] = result.nextOffset
            buffered.append(contentsOf: result.records)
            let topic = metrics.topic(tp.topic)
            topic.records.increment(by: result.records.count)
            topic.bytes.increment(by: result.records.reduce(0) { $0 + ($1.key?.count ?? 0) + ($1.value?.count ?? 0) })
        }
        if !outOfRange.isEmpty {
            guard configuration.autoOffsetReset != .none else {
                throw KafkaError(.offsetOutOfRange, message: "\(outOfRange.map(\.description).joined(separator: ", "))")
            }
            for tp in outOfRange { positions.updateValue(nil, forKey: tp) }
            try await resolveMissingPositions()
        }
    }

    /// Looks up starting offsets: committed ones for a group, else the reset policy.
    private func resolveMissingPositions() async throws {
        let missing = positions.filter { $0.value == nil }.map(\.key)
        guard !missing.isEmpty else { return }
        var found: [TopicPartition: Int64] = [:]
        if let groupId = configuration.groupId {
            found = try await fetchCommittedOffsets(groupId: groupId, partitions: missing)
        }
        let unresolved = missing.filter { found[$0] == nil }
        if !unresolved.isEmpty {
            guard configuration.autoOffsetReset != .none else {
                throw KafkaError(.offsetOutOfRange, message: "no committed offset for \(unresolved) and reset policy none")
            }
            let spec: OffsetSpec = configuration.autoOffsetReset == .earliest ? .earliest : .latest
            let offsets = try await client.listOffsets(
                Dictionary(uniqueKeysWithValues: unresolved.map { ($0, spec) }), isolation: configuration.isolationLevel)
            found.merge(offsets) { a, _ in a }
        }
        for (tp, offset) in found where positions[tp] != nil && positions[tp]! == nil {
            positions[tp] = offset
        }
    }

    // MARK: Closing

    /// Leaves the group (committing first with auto-commit) and closes the connections; the
    /// record sequence then ends.
    public func close() async {
        guard !isClosed else { return }
        await leaveGroup()
        isClosed = true
        prefetch?.cancel()
        prefetch = nil
        joinTask?.cancel()
        joinTask = nil
        wakeWaiters()
        rebalanceContinuation.finish()
        await client.close()
    }
}

/// The records of a consumer as an async sequence (see `KafkaConsumer.records`).
public struct ConsumerRecords: AsyncSequence, Sendable {
    public typealias Element = ConsumerRecord
    let consumer: KafkaConsumer

    public struct AsyncIterator: AsyncIteratorProtocol {
        let consumer: KafkaConsumer
        var batch: [ConsumerRecord] = []
        var index = 0

        public mutating func next() async throws -> ConsumerRecord? {
            if index < batch.count {
                defer { index += 1 }
                return batch[index]
            }
            guard let next = try await consumer.nextBatch() else { return nil }
            batch = next
            index = 1
            return batch.first
        }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(consumer: consumer) }
}
