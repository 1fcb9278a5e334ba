import Foundation
import KafkaProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
import OnceCore
import OnceStorage

/// Drives the pure `TransactionCoordinator`: it writes each metadata change to the transaction
/// log (`__transaction_state`), writes COMMIT/ABORT markers through each partition's producer
/// state, and rebuilds everything from the log on start, finishing the markers of any transaction
/// that a crash left prepared.
///
/// Events and their log appends happen under one lock, so records reach the log in the order the
/// coordinator decided them. Under the `always` flush policy the prepare record is made durable
/// before any marker is written; meanwhile the transaction answers CONCURRENT_TRANSACTIONS.
final class TransactionService: Sendable {
    static let topicName = "__transaction_state"
    /// Only one coordinator ever writes markers here, so its epoch never changes.
    static let coordinatorEpoch: Int32 = 0

    private let storage: any LogStorage
    private let producers: ProducerRegistry
    private let waiters: FetchWaiters
    private let logger: Logger
    private let flushAlways: Bool
    /// Set by the environment variable `ONCE_FAULT_CRASH_BEFORE_MARKERS=1` in fault tests only.
    private let crashBeforeMarkers = ProcessInfo.processInfo.environment["ONCE_FAULT_CRASH_BEFORE_MARKERS"] == "1"
    private let transactionLog: any PartitionLog
    private let coordinator: NIOLockedValueBox<TransactionCoordinator>
    private let lastSnapshotOffset = NIOLockedValueBox<Int64>(-1)
    /// Told when a marker lands in a `__consumer_offsets` partition, so transactional offset
    /// commits take effect or are dropped.
    private let offsetsMarkerWriter = NIOLockedValueBox<OffsetsMarkerWriter?>(nil)

    /// Writes a marker into `__consumer_offsets` by calling `write` (false: a stale marker, nothing
    /// written) and applies or drops the transaction's offsets, atomically for the group coordinator.
    typealias OffsetsMarkerWriter = @Sendable (_ producerId: Int64, _ commit: Bool, _ write: () throws -> Bool) throws -> Void

    init(
        storage: any LogStorage, producers: ProducerRegistry, waiters: FetchWaiters, config: TransactionCoordinator.Config,
        flushAlways: Bool, logger: Logger
    ) throws {
        self.storage = storage
        self.producers = producers
        self.waiters = waiters
        self.logger = logger
        self.flushAlways = flushAlways
        transactionLog = try InternalTopics.log(Self.topicName, in: storage, logger: logger)
        coordinator = NIOLockedValueBox(TransactionCoordinator(config: config))
    }

    func setOffsetsMarkerWriter(_ writer: @escaping OffsetsMarkerWriter) {
        offsetsMarkerWriter.withLockedValue { $0 = writer }
    }

    // MARK: Recovery

    static let snapshotName = "transaction-coordinator"

    /// Loads the latest snapshot, replays the transaction log after it (last record per id wins),
    /// and finishes prepared transactions.
    func recover(now: Int64) throws {
        var latest: [String: TransactionMetadata] = [:]
        var offset = transactionLog.logStartOffset
        let end = transactionLog.logEndOffset
        if let bytes = try storage.readState(named: Self.snapshotName) {
            let snapshot = try TransactionLogSnapshot(decoding: bytes)
            // A snapshot past the log's end belongs to a log that is gone; the log alone then decides.
            if snapshot.offset <= end {
                for txn in snapshot.transactions { latest[txn.transactionalId] = txn }
                offset = max(offset, snapshot.offset)
            }
        }
        while offset < end {
            let chunk = try transactionLog.read(from: offset, maxBytes: 1 << 20, limitOffset: end)
            guard chunk.readableBytes > 0 else { break }
            for batch in try RecordBatch.decodeAll(from: chunk) {
                for record in batch.records where batch.offset(of: record) >= offset {
                    guard let key = record.key else { continue }
                    let id = String(decoding: key, as: UTF8.self)
                    if let value = record.value {
                        latest[id] = try TransactionMetadata(decoding: value)
                    } else {
                        latest[id] = nil
                    }
                }
                offset = max(offset, batch.header.lastOffset + 1)
            }
        }
        let prepared = latest.values.filter { $0.state == .prepareCommit || $0.state == .prepareAbort }.count
        logger.info("transaction log replayed", metadata: ["transactionalIds": "\(latest.count)", "prepared": "\(prepared)"])
        let outcome = coordinator.withLockedValue { $0.recover(Array(latest.values)) }
        try finish(outcome.actions, now: now)
    }

    /// Writes a snapshot of every transactional id if the log grew since the last one, then deletes
    /// the log segments it replaced. Called periodically and at shutdown.
    func snapshot() throws {
        // Taken under the lock that orders appends, so the offset and the metadata agree.
        let snapshot = coordinator.withLockedValue { c in
            TransactionLogSnapshot(offset: transactionLog.logEndOffset, transactions: Array(c.transactions.values))
        }
        guard snapshot.offset > lastSnapshotOffset.withLockedValue({ $0 }) else { return }
        try storage.writeState(named: Self.snapshotName, snapshot.encoded())
        lastSnapshotOffset.withLockedValue { $0 = max($0, snapshot.offset) }
        let deleted = try transactionLog.deleteSegments(below: snapshot.offset)
        if deleted > 0 {
            logger.debug("transaction log segments replaced by a snapshot", metadata: ["deleted": "\(deleted)"])
        }
    }

    // MARK: Events

    func initProducerId(
        transactionalId: String, timeoutMs: Int32, expectedProducerId: Int64, expectedProducerEpoch: Int16, now: Int64
    ) async throws -> TransactionCoordinator.Outcome {
        try await run(now: now) { c in
            try c.initProducerIdReceived(
                transactionalId: transactionalId, timeoutMs: timeoutMs, expectedProducerId: expectedProducerId,
                expectedProducerEpoch: expectedProducerEpoch, now: now, newProducerId: producers.allocateProducerId)
        }
    }

    func addPartitions(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, partitions: [TopicPartitionKey], now: Int64
    ) async throws -> TransactionCoordinator.Failure? {
        try await run(now: now) { c in
            c.addPartitionsReceived(
                transactionalId: transactionalId, producerId: producerId, producerEpoch: producerEpoch,
                partitions: partitions, now: now)
        }.failure
    }

    func endTransaction(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, commit: Bool, now: Int64
    ) async throws -> TransactionCoordinator.Failure? {
        try await run(now: now) { c in
            c.endTransactionReceived(
                transactionalId: transactionalId, producerId: producerId, producerEpoch: producerEpoch, commit: commit, now: now)
        }.failure
    }

    func abort(transactionalId: String, now: Int64) async throws -> TransactionCoordinator.Failure? {
        try await run(now: now) { $0.abortRequested(transactionalId: transactionalId, now: now) }.failure
    }

    func checkTimeouts(now: Int64) async throws {
        _ = try await run(now: now) { $0.timeoutsChecked(now: now) }
    }

    /// KIP-890: may this producer write transactional data to this partition now?
    func verify(producerId: Int64, producerEpoch: Int16, partition: TopicPartitionKey) -> TransactionCoordinator.Failure? {
        coordinator.withLockedValue { $0.verify(producerId: producerId, producerEpoch: producerEpoch, partition: partition) }
    }

    var transactions: [TransactionMetadata] {
        coordinator.withLockedValue { Array($0.transactions.values) }.sorted { $0.transactionalId < $1.transactionalId }
    }

    // MARK: Performing actions

    /// Applies an event and performs its actions. Persisting happens under the lock, in order; marker
    /// writing waits, outside the lock, until the prepare record is durable when the policy asks.
    private func run(
        now: Int64, _ event: (inout TransactionCoordinator) throws -> TransactionCoordinator.Outcome
    ) async throws -> TransactionCoordinator.Outcome {
        let (outcome, pending) = try coordinator.withLockedValue { c -> (TransactionCoordinator.Outcome, [TransactionCoordinator.Action]) in
            let outcome = try event(&c)
            return (outcome, try persistUntilMarkers(outcome.actions))
        }
        var remaining = pending
        if !remaining.isEmpty && crashBeforeMarkers {
            // Fault injection for tests: die the way a power cut would, between a durable prepare
            // record and its markers.
            logger.critical("ONCE_FAULT_CRASH_BEFORE_MARKERS set: exiting before writing markers")
            kill(getpid(), SIGKILL)
        }
        while !remaining.isEmpty {
            if flushAlways { try await transactionLog.waitDurable(upTo: transactionLog.logEndOffset) }
            remaining = try coordinator.withLockedValue { c in try writeMarkersAndContinue(remaining, &c, now: now) }
        }
        return outcome
    }

    /// The synchronous form for recovery at start, before any client is served.
    private func finish(_ actions: [TransactionCoordinator.Action], now: Int64) throws {
        var remaining = try coordinator.withLockedValue { _ in try persistUntilMarkers(actions) }
        while !remaining.isEmpty {
            remaining = try coordinator.withLockedValue { c in try writeMarkersAndContinue(remaining, &c, now: now) }
        }
    }

    /// Persists leading `.persist`/`.remove` actions; returns the rest, starting at the first marker action.
    private func persistUntilMarkers(_ actions: [TransactionCoordinator.Action]) throws -> [TransactionCoordinator.Action] {
        var index = actions.startIndex
        var records: [Record] = []
        while index < actions.endIndex {
            switch actions[index] {
            case .persist(let txn):
                records.append(Record(offsetDelta: Int32(records.count), key: Array(txn.transactionalId.utf8), value: txn.encoded()))
            case .remove(let id):
                records.append(Record(offsetDelta: Int32(records.count), key: Array(id.utf8), value: nil))
            case .writeMarkers:
                try appendToTransactionLog(records)
                return Array(actions[index...])
            }
            index += 1
        }
        try appendToTransactionLog(records)
        return []
    }

    /// Writes the markers of the first action (a `.writeMarkers`), records their completion, and
    /// persists what follows up to the next marker action.
    private func writeMarkersAndContinue(
        _ actions: [TransactionCoordinator.Action], _ c: inout TransactionCoordinator, now: Int64
    ) throws -> [TransactionCoordinator.Action] {
        guard case .writeMarkers(let id, let producerId, let producerEpoch, let commit, let partitions) = actions.first else {
            return try persistUntilMarkers(actions)
        }
        for partition in partitions {
            try writeMarker(partition, producerId: producerId, producerEpoch: producerEpoch, commit: commit, now: now)
        }
        let completed = c.markersWritten(transactionalId: id, now: now)
        return try persistUntilMarkers(completed.actions + actions.dropFirst())
    }

    private func writeMarker(_ key: TopicPartitionKey, producerId: Int64, producerEpoch: Int16, commit: Bool, now: Int64) throws {
        guard let topic = storage.topic(named: key.topic),
            let partition = try producers.producers(topic: topic, partition: key.partition)
        else {
            logger.warning("no partition for a transaction marker", metadata: ["partition": "\(key)"])
            return
        }
        let write = {
            let written = try partition.appendMarker(
                producerId: producerId, producerEpoch: producerEpoch, commit: commit,
                coordinatorEpoch: Self.coordinatorEpoch, now: now)
            if written == nil {
                self.logger.warning("stale transaction marker skipped", metadata: ["partition": "\(key)", "producer": "\(producerId)"])
            }
            return written != nil
        }
        if key.topic == InternalTopics.consumerOffsets, let writer = offsetsMarkerWriter.withLockedValue({ $0 }) {
            try writer(producerId, commit, write)
        } else {
            _ = try write()
        }
        waiters.notify(.init(topic: key.topic, partition: key.partition))
    }

    private func appendToTransactionLog(_ records: [Record]) throws {
        guard !records.isEmpty else { return }
        _ = try transactionLog.append(RecordBatch.encode(records: records, baseTimestamp: Clock.nowMilliseconds()))
    }
}

/// Kafka's internal topics: listed with `isInternal`, and kept out of the way of client writes.
enum InternalTopics {
    static let consumerOffsets = GroupCoordinator.topicName
    static let transactionState = TransactionService.topicName
    static let names: Set<String> = [consumerOffsets, transactionState]

    /// The single partition of an internal topic, created on first need. Time and size retention
    /// would delete live coordinator state, so they are off; the coordinators drop what their
    /// snapshots replace, and small segments let them do it often.
    static func log(_ name: String, in storage: any LogStorage, logger: Logger) throws -> any PartitionLog {
        if let log = storage.partition(topic: name, partition: 0) { return log }
        do {
            try storage.createTopic(
                name: name, partitions: 1,
                configs: [
                    "cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1",
                    "segment.bytes": "16777216",
                ])
            logger.info("created \(name)")
        } catch StorageError.topicExists {}
        guard let log = storage.partition(topic: name, partition: 0) else { throw StorageError.unknownTopic(name) }
        return log
    }
}

extension TransactionCoordinator.Failure {
    var errorCode: ErrorCode {
        switch self {
        case .invalidTransactionTimeout: .invalidTransactionTimeout
        case .concurrentTransactions: .concurrentTransactions
        case .producerFenced: .producerFenced
        case .invalidProducerIdMapping: .invalidProducerIdMapping
        case .invalidTxnState: .invalidTxnState
        }
    }

    /// The code for a refused partition write (a transactional Produce or TxnOffsetCommit checked
    /// against the coordinator, KIP-890): Kafka turns the coordinator's PRODUCER_FENCED into
    /// INVALID_PRODUCER_EPOCH there, the code a partition itself gives a stale epoch.
    var partitionWriteErrorCode: ErrorCode {
        self == .producerFenced ? .invalidProducerEpoch : errorCode
    }
}
