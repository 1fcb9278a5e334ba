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
/// EndTxn is answered once the prepare record and the markers this broker writes itself are
/// durable; markers for partitions led elsewhere go out afterwards, and the transaction stays
/// prepared until they are written.
final class TransactionService: Sendable {
    static let topicName = "__transaction_state"

    private let storage: any LogStorage
    private let producers: ProducerRegistry
    private let waiters: FetchWaiters
    private let logger: Logger
    private let flushAlways: Bool
    private let clock: @Sendable () -> Int64
    /// Set by the environment variable `ONCE_FAULT_CRASH_BEFORE_MARKERS=1` in fault tests only.
    private let crashBeforeMarkers = ProcessInfo.processInfo.environment["ONCE_FAULT_CRASH_BEFORE_MARKERS"] == "1"
    /// Swapped when leadership of `__transaction_state-0` arrives: the engine opens a new partition
    /// at the new epoch, and the one held before is fenced.
    private let log: NIOLockedValueBox<any PartitionLog>
    private var transactionLog: any PartitionLog { log.withLockedValue { $0 } }
    private let config: TransactionCoordinator.Config
    private let coordinator: NIOLockedValueBox<TransactionCoordinator>
    /// Serving from the start on one broker; in a cluster only between a gain and a loss.
    let load: CoordinatorLoad
    private let lastSnapshotOffset = NIOLockedValueBox<Int64>(-1)
    /// Told when a marker lands in a `__consumer_offsets` partition, so transactional offset
    /// commits take effect or are dropped.
    private let offsetsMarkerWriter = NIOLockedValueBox<OffsetsMarkerWriter?>(nil)
    /// Who leads each partition, and the brokers to send markers to for those another leads; nil
    /// on one broker, which leads everything.
    private let cluster: any ClusterView
    private let peers: TransactionPeers?
    private let retryBackoff: MarkerRetryBackoff
    /// Where marker retries run and wait: the broker's executor and clock, so the simulator runs
    /// them at simulated time like every other broker task.
    private let runtime: BrokerRuntime
    /// The leader epoch of `__transaction_state-0` this broker coordinates under, written into
    /// every marker (Kafka's coordinator epoch); 0 on one broker, whose coordinator never moves.
    private let coordinatorEpoch = NIOLockedValueBox<Int32>(0)
    /// The transactions whose markers a retry loop is delivering, so the periodic check does not
    /// start a second; the generation changes with each gain or loss of the coordinator, which
    /// ends the loops of the tenure before.
    private let retries = NIOLockedValueBox(MarkerRetries())

    private struct MarkerRetries {
        var generation = 0
        var ids: Set<String> = []
    }

    /// How long a marker that could not be written waits before it is sent again, doubled per
    /// failed attempt up to `max` (Kafka's `retry.backoff.ms` and `retry.backoff.max.ms`).
    struct MarkerRetryBackoff: Sendable {
        var base: Int64 = 100
        var max: Int64 = 1000

        func delay(attempt: Int) -> Int64 {
            let exponent = Swift.min(Swift.max(attempt - 1, 0), 20)
            return Swift.min(base << exponent, max)
        }
    }

    /// Writes a marker into `__consumer_offsets` by calling `write` (false: a stale marker, nothing
    /// written) and applies or drops the transaction's offsets, atomically for the group coordinator.
    typealias OffsetsMarkerWriter = @Sendable (_ producerId: Int64, _ commit: Bool, _ write: () throws -> Bool) throws -> Void

    init(
        storage: any LogStorage, producers: ProducerRegistry, waiters: FetchWaiters, config: TransactionCoordinator.Config,
        flushAlways: Bool, logger: Logger, clock: @escaping @Sendable () -> Int64, servesAtStart: Bool = true,
        cluster: any ClusterView, peers: TransactionPeers? = nil, retryBackoff: MarkerRetryBackoff = MarkerRetryBackoff(),
        runtime: BrokerRuntime
    ) throws {
        self.runtime = runtime
        self.cluster = cluster
        self.peers = peers
        self.retryBackoff = retryBackoff
        self.config = config
        self.load = CoordinatorLoad(serving: servesAtStart)
        self.clock = clock
        self.storage = storage
        self.producers = producers
        self.waiters = waiters
        self.logger = logger
        self.flushAlways = flushAlways
        log = NIOLockedValueBox(try InternalTopics.log(Self.topicName, in: storage, logger: logger))
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
        var snapshotIsAhead = false
        if let bytes = try storage.readState(named: Self.snapshotName) {
            let snapshot = try TransactionLogSnapshot(decoding: bytes)
            // The snapshot replaced the segments below its offset, so it is trusted whole. One past
            // the log's end (a tail lost in a power cut before the log was synced) is rewritten at
            // the end once the log is read, or appends from here would hide behind its offset.
            for txn in snapshot.transactions { latest[txn.transactionalId] = txn }
            offset = max(offset, snapshot.offset)
            snapshotIsAhead = snapshot.offset > end
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
        if snapshotIsAhead {
            logger.warning("transaction snapshot is past the log end; writing it again at the end", metadata: ["end": "\(end)"])
            try snapshot()
        }
        try finish(outcome.actions, now: now)
        // The groups' undecided transactional offsets live in __consumer_offsets: its open
        // transactions are checked now, not only once something touches it.
        if let offsets = storage.topic(named: InternalTopics.consumerOffsets) {
            _ = try producers.producers(topic: offsets, partition: 0)
        }
        for marker in try abortHangingTransactions(now: now).markers where flushAlways { try marker.log.sync() }
    }

    /// Writes a snapshot of every transactional id if the log grew since the last one, then deletes
    /// the log segments it replaced. Called periodically and at shutdown; a broker not serving
    /// holds no state worth a snapshot, and would overwrite the leader's.
    func snapshot() throws {
        guard load.current != .idle else { return }
        // Taken under the lock that orders appends, so the offset and the metadata agree.
        let snapshot = coordinator.withLockedValue { c in
            TransactionLogSnapshot(offset: transactionLog.logEndOffset, transactions: Array(c.transactions.values))
        }
        guard snapshot.offset > lastSnapshotOffset.withLockedValue({ $0 }) else { return }
        // The log must hold at least what the snapshot covers before the snapshot replaces segments.
        try transactionLog.sync()
        try storage.writeState(named: Self.snapshotName, snapshot.encoded(), describing: transactionLog)
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

    /// An operator's abort of one partition's hanging transaction (WriteTxnMarkers): refused with
    /// INVALID_TXN_STATE while the coordinator considers the producer's transaction there live, or
    /// when the partition holds no open transaction of the producer; INVALID_PRODUCER_EPOCH for an
    /// epoch older than the partition's.
    func abortHanging(_ key: TopicPartitionKey, producerId: Int64, producerEpoch: Int16, now: Int64) throws -> ErrorCode {
        // Loading a partition's producer state reads its log: done before the coordinator's lock,
        // which every transactional request takes, as addPartitions does.
        guard let topic = storage.topic(named: key.topic),
            let partition = try producers.producers(topic: topic, partition: key.partition)
        else { return .unknownTopicOrPartition }
        return try coordinator.withLockedValue { c in
            guard let open = partition.table.openTransactionsByProducer.first(where: { $0.producerId == producerId }),
                !c.isLive(producerId: producerId, partition: key)
            else { return .invalidTxnState }
            guard producerEpoch >= open.epoch else { return .invalidProducerEpoch }
            logger.warning("operator aborted a hanging transaction", metadata: [
                "partition": "\(key)", "producer": "\(producerId)", "firstOffset": "\(open.firstOffset)",
            ])
            _ = try writeMarker(key, producerId: producerId, producerEpoch: producerEpoch, commit: false, now: now)
            return .none
        }
    }

    /// A COMMIT or ABORT from the transaction coordinator on another broker (WriteTxnMarkers with
    /// its coordinator epoch) for a partition this broker leads. Written as Kafka's partition
    /// writes a coordinator's marker, whether or not the partition still holds the producer's
    /// transaction (a retry after a lost answer finds it ended). INVALID_PRODUCER_EPOCH for an
    /// epoch older than the partition's; an ABORT of a transaction this broker's own coordinator
    /// considers live is refused as the operator's is (the sender was deposed).
    func writeCoordinatorMarker(
        _ key: TopicPartitionKey, producerId: Int64, producerEpoch: Int16, commit: Bool, coordinatorEpoch: Int32, now: Int64
    ) async throws -> ErrorCode {
        guard let topic = storage.topic(named: key.topic),
            try producers.producers(topic: topic, partition: key.partition) != nil
        else { return .unknownTopicOrPartition }
        let written: WrittenMarker?? = try coordinator.withLockedValue { c in
            if !commit && c.isLive(producerId: producerId, partition: key) { return .none }
            return .some(try writeMarker(
                key, producerId: producerId, producerEpoch: producerEpoch, commit: commit, coordinatorEpoch: coordinatorEpoch,
                now: now))
        }
        guard let written else { return .invalidTxnState }
        guard let written else { return .invalidProducerEpoch }
        if flushAlways { try await written.log.waitDurable(upTo: written.end) }
        return .none
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn. Before the answer, a partition joining the
    /// transaction must not hold an open transaction of this producer: any it holds is an earlier
    /// one whose marker that partition lost, and the new transaction's marker would end it too
    /// (committing what may have been aborted). It is aborted first, under the coordinator's lock.
    ///
    /// `transactionVersion` 2 is a partition adding itself on a transactions-V2 write (Produce v12,
    /// TxnOffsetCommit v5), where no AddPartitionsToTxn comes from the client.
    func addPartitions(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, partitions: [TopicPartitionKey],
        transactionVersion: Int16 = 0, now: Int64
    ) async throws -> TransactionCoordinator.Failure? {
        var joining: [TopicPartitionKey] = []
        // Where each joining partition's log ended when it joined: only an open transaction that
        // began below it is an earlier one. The durability wait below lets a retry of this request
        // be answered meanwhile and the producer append its batch there, which must stay.
        var joinedAt: [TopicPartitionKey: Int64] = [:]
        let outcome = try await run(now: now) { c in
            let before = c.transactions[transactionalId]
            let outcome = c.addPartitionsReceived(
                transactionalId: transactionalId, producerId: producerId, producerEpoch: producerEpoch,
                partitions: partitions, transactionVersion: transactionVersion, now: now)
            if outcome.failure == nil {
                let held = before?.state == .ongoing ? before?.partitions ?? [] : []
                joining = partitions.filter { !held.contains($0) }
                for key in joining { joinedAt[key] = storage.partition(topic: key.topic, partition: key.partition)?.logEndOffset }
            }
            return outcome
        }
        guard outcome.failure == nil, !joining.isEmpty else { return outcome.failure }
        // Loading a partition's producer state may replay its log: done before taking the lock.
        // Only a partition this broker leads can take the abort; one led elsewhere is left to its leader.
        let tables = try joining.filter { cluster.leads($0) }.compactMap { key in
            try storage.topic(named: key.topic).flatMap { try producers.producers(topic: $0, partition: key.partition) }
                .map { (key, $0) }
        }
        let markers: [WrittenMarker] = try coordinator.withLockedValue { _ in
            var markers: [WrittenMarker] = []
            for (key, partition) in tables {
                guard let stale = partition.table.openTransactionsByProducer.first(where: {
                    $0.producerId == producerId && $0.firstOffset < joinedAt[key] ?? .max
                }) else { continue }
                logger.warning("aborting a transaction left open by a lost marker", metadata: [
                    "partition": "\(key)", "producer": "\(producerId)", "firstOffset": "\(stale.firstOffset)",
                ])
                if let marker = try writeMarker(key, producerId: producerId, producerEpoch: producerEpoch, commit: false, now: now) {
                    markers.append(marker)
                }
            }
            return markers
        }
        // The answer adds the partition to the new transaction: under `always` the abort must not
        // be the part a power cut takes back, or the new transaction's marker would end the old one.
        try await waitDurable(markers)
        return nil
    }

    /// Under `always`, waits until the markers are durable and wakes the fetches their high
    /// watermarks held back; outside every lock.
    private func waitDurable(_ markers: [WrittenMarker]) async throws {
        guard flushAlways else { return }
        for marker in markers {
            try await marker.log.waitDurable(upTo: marker.end)
            waiters.notify(.init(topic: marker.log.topic, partition: marker.log.partition))
        }
    }

    /// EndTxn; with `transactionVersion` 2 (EndTxn v5) the outcome carries the producer id and
    /// epoch the client continues with.
    func endTransaction(
        transactionalId: String, producerId: Int64, producerEpoch: Int16, commit: Bool, transactionVersion: Int16, now: Int64
    ) async throws -> TransactionCoordinator.Outcome {
        try await run(now: now) { c in
            try c.endTransactionReceived(
                transactionalId: transactionalId, producerId: producerId, producerEpoch: producerEpoch, commit: commit,
                transactionVersion: transactionVersion, now: now, newProducerId: producers.allocateProducerId)
        }
    }

    func abort(transactionalId: String, now: Int64) async throws -> TransactionCoordinator.Failure? {
        try await run(now: now) { $0.abortRequested(transactionalId: transactionalId, now: now) }.failure
    }

    func checkTimeouts(now: Int64) async throws {
        guard load.serving else { return }
        _ = try await run(now: now) { $0.timeoutsChecked(now: now) }
        try await waitDurable(try abortHangingTransactions(now: now).markers)
    }

    /// Ends every open transaction on a loaded partition (partitions load on first use, so this
    /// runs at start and with every timeout check) that the coordinator does not consider live, with an ABORT marker at the producer's epoch there: its marker, or the coordinator's
    /// record of it, was lost with a cut log tail, and read_committed readers would wait on its
    /// LSO forever. Runs under the coordinator's lock, where markers are written and transactions
    /// are decided, so a live transaction is never taken for a hanging one; a produce verified
    /// before this loses its verification guard with the marker and is refused.
    /// Returns the partitions and producers aborted, and the markers written, which the caller
    /// makes durable outside the lock.
    @discardableResult
    func abortHangingTransactions(now: Int64) throws
        -> (aborted: [(partition: TopicPartitionKey, producerId: Int64)], markers: [WrittenMarker])
    {
        try coordinator.withLockedValue { c in
            var aborted: [(partition: TopicPartitionKey, producerId: Int64)] = []
            var markers: [WrittenMarker] = []
            for (key, partition) in producers.loaded() where cluster.leads(key) {
                for open in partition.table.openTransactionsByProducer
                where !c.isLive(producerId: open.producerId, partition: key) {
                    logger.warning("aborting a hanging transaction", metadata: [
                        "partition": "\(key)", "producer": "\(open.producerId)", "epoch": "\(open.epoch)",
                        "firstOffset": "\(open.firstOffset)",
                    ])
                    // One partition that refuses the marker (led by another broker now) must not
                    // keep the others hanging, nor fail a coordinator's load: the next check retries.
                    do {
                        if let marker = try writeMarker(key, producerId: open.producerId, producerEpoch: open.epoch, commit: false, now: now) {
                            markers.append(marker)
                        }
                    } catch {
                        logger.warning("aborting a hanging transaction failed; retrying at the next check", metadata: [
                            "partition": "\(key)", "producer": "\(open.producerId)", "error": "\(error)",
                        ])
                        continue
                    }
                    aborted.append((key, open.producerId))
                }
            }
            return (aborted, markers)
        }
    }

    /// KIP-890: may this producer write transactional data to this partition now?
    func verify(
        transactionalId: String? = nil, producerId: Int64, producerEpoch: Int16, partition: TopicPartitionKey
    ) -> TransactionCoordinator.Failure? {
        coordinator.withLockedValue {
            $0.verify(transactionalId: transactionalId, producerId: producerId, producerEpoch: producerEpoch, partition: partition)
        }
    }

    /// Whether a partition's open transaction belongs to a live coordinator transaction; one that
    /// does not is hanging (see `abortHangingTransactions`).
    func isLive(producerId: Int64, partition: TopicPartitionKey) -> Bool {
        coordinator.withLockedValue { $0.isLive(producerId: producerId, partition: partition) }
    }

    var transactions: [TransactionMetadata] {
        coordinator.withLockedValue { Array($0.transactions.values) }.sorted { $0.transactionalId < $1.transactionalId }
    }

    // MARK: Performing actions

    /// Applies an event and performs its actions. Persisting happens under the lock, in order; every
    /// wait for the disk happens outside it. Under `always`, nothing is answered and no marker written
    /// before the records that decided it are durable, and a transaction is recorded complete only
    /// once its markers are durable: a power cut then leaves either the prepare record (and recovery
    /// writes the markers again) or every marker.
    private func run(
        now: Int64, _ event: (inout TransactionCoordinator) throws -> TransactionCoordinator.Outcome
    ) async throws -> TransactionCoordinator.Outcome {
        let (outcome, pending, logEnd) = try coordinator.withLockedValue { c in
            // A change whose record could not even be appended is undone: kept in memory, a retry
            // would be answered from it (AddPartitionsToTxn: already added) though no record of it
            // exists, and the next coordinator, loading the log, would not know the transaction.
            let before = c
            do {
                let outcome = try event(&c)
                return (outcome, try persistUntilMarkers(outcome.actions), transactionLog.logEndOffset)
            } catch {
                c = before
                throw error
            }
        }
        // Also when this event wrote nothing: its answer may rest on an earlier change whose record
        // is not durable yet (a retry after a failed sync finds its partitions already added).
        if flushAlways { try await transactionLog.waitDurable(upTo: logEnd) }
        var remaining = pending
        if !remaining.isEmpty && crashBeforeMarkers {
            // Fault injection for tests: die the way a power cut would, between a durable prepare
            // record and its markers.
            logger.critical("ONCE_FAULT_CRASH_BEFORE_MARKERS set: exiting before writing markers")
            kill(getpid(), SIGKILL)
        }
        // A transaction whose markers fail stays prepared for the next check to retry; the other
        // transactions of the same outcome still complete, and the first failure is thrown after.
        var failure: (any Error)?
        while let action = remaining.first {
            var round: MarkerRound?
            var pending: [TopicPartitionKey] = []
            do {
                round = try coordinator.withLockedValue { c in try writeMarkers(action, c, now: now) }
                pending = try await settleLocal(round)
            } catch {
                failure = failure ?? error
                round = nil
            }
            let (next, end) = try coordinator.withLockedValue { [round, pending] c in
                // Markers still to write keep the transaction prepared, and a retry loop completes
                // it. Those for partitions led elsewhere are sent from there at once, after the
                // answer, as Kafka's coordinator answers EndTxn once the prepare record is written
                // and its marker channel sends the markers afterwards: a leader that is slow or
                // away holds the transaction prepared (CONCURRENT_TRANSACTIONS to the producer's
                // next request, an open transaction below the LSO for read_committed readers),
                // never the producer's commit.
                let remote = round?.remote?.partitions ?? []
                if round != nil && !(pending + remote).isEmpty {
                    retryMarkers(action, pending + remote, immediately: !remote.isEmpty)
                }
                return (try completeMarkers(
                    action, written: round != nil && pending.isEmpty && remote.isEmpty, rest: remaining.dropFirst(), &c, now: now),
                 transactionLog.logEndOffset)
            }
            if flushAlways { try await transactionLog.waitDurable(upTo: end) }
            remaining = next
        }
        if let failure { throw failure }
        return outcome
    }

    /// Waits for a round's own markers to be durable (under `always`). Returns the partitions
    /// this broker could not write (it stopped leading them meanwhile); those led elsewhere are
    /// left to `deliver`.
    private func settleLocal(_ round: MarkerRound?) async throws -> [TopicPartitionKey] {
        guard let round else { return [] }
        if flushAlways {
            for marker in round.written {
                try await marker.log.waitDurable(upTo: marker.end)
                waiters.notify(.init(topic: marker.log.topic, partition: marker.log.partition))
            }
        }
        return round.pending
    }

    /// Waits for a round's own markers to be durable (under `always`) and sends the others to
    /// their leaders. Returns the partitions whose marker is not written yet.
    private func deliver(_ round: MarkerRound?) async throws -> [TopicPartitionKey] {
        guard let round else { return [] }
        var pending = try await settleLocal(round)
        if let remote = round.remote, let peers {
            for (partition, code) in await peers.write(remote) where !markerSettled(partition, code) {
                logger.info("transaction marker to retry", metadata: [
                    "partition": "\(partition)", "producer": "\(remote.producerId)", "error": "\(code)",
                ])
                pending.append(partition)
            }
        }
        return pending.sorted()
    }

    /// Whether a leader's answer ends the marker's delivery: written, or refused for an epoch the
    /// partition has moved past (what the local write skips as stale), or the topic is gone.
    /// Everything else (a leader that moved, one not reached, a storage failure) is sent again.
    private func markerSettled(_ partition: TopicPartitionKey, _ code: ErrorCode) -> Bool {
        switch code {
        case .none, .invalidProducerEpoch: true
        case .unknownTopicOrPartition: storage.partition(topic: partition.topic, partition: partition.partition) == nil
        default: false
        }
    }

    /// Delivers the markers of a prepared transaction still missing on `partitions`, with Kafka's
    /// backoff between attempts, until each is written, then records the transaction complete.
    /// Never given up while this broker coordinates: a prepared transaction whose markers are
    /// forgotten would answer CONCURRENT_TRANSACTIONS for good. A loss of the coordinator ends the
    /// loop; the next coordinator loads the prepared state and sends them again.
    private func retryMarkers(_ action: TransactionCoordinator.Action, _ partitions: [TopicPartitionKey], immediately: Bool) {
        guard case .writeMarkers(let id, let producerId, let producerEpoch, let commit, _) = action else { return }
        let generation: Int? = retries.withLockedValue { r in r.ids.insert(id).inserted ? r.generation : nil }
        guard let generation else { return }
        runtime.run { [self] in
            var pending = partitions
            var attempt = immediately ? 0 : 1
            // Every transaction with a partition led elsewhere passes here: only one delivered
            // after a failure is worth the log at info.
            var failed = !immediately
            while true {
                if attempt > 0 { await runtime.sleep(ms: retryBackoff.delay(attempt: attempt)) }
                attempt += 1
                // A new tenure reset the ids: nothing of this loop's is left to release.
                guard retries.withLockedValue({ $0.generation == generation }) else { break }
                do {
                    let now = clock()
                    guard let round = try coordinator.withLockedValue({ c in
                        let round = try writeMarkers(action, c, only: pending, now: now)
                        if round == nil { release(id, generation) }
                        return round
                    }) else { break }
                    pending = try await deliver(round)
                    guard pending.isEmpty else {
                        failed = true
                        continue
                    }
                    // Recorded only if this tenure still waits for exactly these markers. The id
                    // is released with the completion, under the same lock: the producer's next
                    // transaction may prepare the moment this one completes, and needs a loop of
                    // its own for its markers.
                    let end = try coordinator.withLockedValue { c in
                        guard retries.withLockedValue({ $0.generation == generation }),
                            c.awaitsMarkers(transactionalId: id, producerId: producerId, producerEpoch: producerEpoch, commit: commit)
                        else {
                            release(id, generation)
                            return nil as Int64?
                        }
                        _ = try completeMarkers(action, written: true, rest: [], &c, now: now)
                        release(id, generation)
                        return transactionLog.logEndOffset
                    }
                    guard let end else { break }
                    logger.log(level: failed ? .info : .debug, "transaction markers delivered", metadata: ["transactionalId": "\(id)"])
                    // The loop ends here whatever the wait finds: another round would take the
                    // producer's next transaction, prepared at the same epoch, for this one.
                    if flushAlways {
                        do { try await transactionLog.waitDurable(upTo: end) } catch {
                            logger.warning("transaction completion not yet durable", metadata: ["transactionalId": "\(id)", "error": "\(error)"])
                        }
                    }
                    break
                } catch {
                    failed = true
                    logger.warning("transaction marker retry failed", metadata: ["transactionalId": "\(id)", "error": "\(error)"])
                }
            }
        }
    }

    /// Ends a retry loop's claim on a transaction, unless a gain or loss of the coordinator
    /// already reset every claim (and a loop of the new tenure may hold this id).
    private func release(_ id: String, _ generation: Int) {
        retries.withLockedValue { r in if r.generation == generation { r.ids.remove(id) } }
    }

    /// The synchronous form for recovery at start, before any client is served; as in `run`, the
    /// fsyncs happen outside the lock. A transaction whose markers cannot be written now (the
    /// database away) stays prepared for the timeout check to retry, rather than failing the whole
    /// load: a coordinator that never loads answers NOT_COORDINATOR for every transactional id.
    private func finish(_ actions: [TransactionCoordinator.Action], now: Int64) throws {
        var remaining = try coordinator.withLockedValue { _ in try persistUntilMarkers(actions) }
        while let action = remaining.first {
            var round: MarkerRound?
            do {
                round = try coordinator.withLockedValue { c in try writeMarkers(action, c, now: now) }
                if flushAlways { for marker in round?.written ?? [] { try marker.log.sync() } }
            } catch {
                logger.warning("markers of a recovered transaction failed; retrying at the next timeout check", metadata: ["error": "\(error)"])
                round = nil
            }
            remaining = try coordinator.withLockedValue { [round] c in
                // Markers for partitions led elsewhere go out once this returns, from a retry loop.
                let pending = (round?.pending ?? []) + (round?.remote?.partitions ?? [])
                if round != nil && !pending.isEmpty { retryMarkers(action, pending, immediately: true) }
                return try completeMarkers(action, written: round != nil && pending.isEmpty, rest: remaining.dropFirst(), &c, now: now)
            }
        }
    }

    /// Persists leading `.persist`/`.remove` actions; returns the rest, starting at the first marker action.
    private func persistUntilMarkers(_ actions: some Collection<TransactionCoordinator.Action>) throws -> [TransactionCoordinator.Action] {
        var records: [Record] = []
        for (index, action) in actions.enumerated() {
            switch action {
            case .persist(let txn):
                records.append(Record(offsetDelta: Int32(records.count), key: Array(txn.transactionalId.utf8), value: txn.encoded()))
            case .remove(let id):
                records.append(Record(offsetDelta: Int32(records.count), key: Array(id.utf8), value: nil))
            case .writeMarkers:
                try appendToTransactionLog(records)
                return Array(actions.dropFirst(index))
            }
        }
        try appendToTransactionLog(records)
        return []
    }

    /// A marker written to a partition: where it must be durable before the transaction completes.
    struct WrittenMarker {
        var log: any PartitionLog
        var end: Int64
    }

    /// One attempt at a transaction's markers: those written here, those a leader elsewhere is to
    /// write, and those that could not be written here (this broker stopped leading meanwhile).
    private struct MarkerRound {
        var written: [WrittenMarker] = []
        var pending: [TopicPartitionKey] = []
        var remote: TransactionPeers.Markers?
    }

    /// Writes the markers of a `.writeMarkers` action for the partitions this broker leads (all of
    /// them, or `only` those a retry still needs), unless the transaction is no longer waiting for
    /// them (nil): a second copy from a retry or a late action would otherwise land after the
    /// producer began its next transaction at the same epoch, and end that one. A transaction a
    /// retry loop is delivering is left to it (nil) when the periodic check asks again.
    private func writeMarkers(
        _ action: TransactionCoordinator.Action, _ c: TransactionCoordinator, only: [TopicPartitionKey]? = nil, now: Int64
    ) throws -> MarkerRound? {
        guard case .writeMarkers(let id, let producerId, let producerEpoch, let commit, let partitions) = action,
            c.awaitsMarkers(transactionalId: id, producerId: producerId, producerEpoch: producerEpoch, commit: commit),
            only != nil || !retries.withLockedValue({ $0.ids.contains(id) })
        else { return nil }
        var round = MarkerRound()
        var remote: [TopicPartitionKey] = []
        for partition in only ?? partitions {
            if peers != nil && !cluster.leads(partition) {
                remote.append(partition)
                continue
            }
            do {
                if let written = try writeMarker(partition, producerId: producerId, producerEpoch: producerEpoch, commit: commit, now: now) {
                    round.written.append(written)
                }
            } catch StorageError.notLeader {
                round.pending.append(partition)
            }
        }
        if !remote.isEmpty {
            round.remote = TransactionPeers.Markers(
                producerId: producerId, producerEpoch: producerEpoch, commit: commit,
                coordinatorEpoch: coordinatorEpoch.withLockedValue { $0 },
                transactionVersion: Int8(clamping: c.transactions[id]?.transactionVersion ?? 0), partitions: remote)
        }
        return round
    }

    /// Records that the markers of `action` are written (when they were) and persists what follows,
    /// up to the next marker action, which it returns with the rest.
    private func completeMarkers(
        _ action: TransactionCoordinator.Action, written: Bool, rest: ArraySlice<TransactionCoordinator.Action>,
        _ c: inout TransactionCoordinator, now: Int64
    ) throws -> [TransactionCoordinator.Action] {
        guard written, case .writeMarkers(let id, _, _, _, _) = action else { return try persistUntilMarkers(rest) }
        return try persistUntilMarkers(c.markersWritten(transactionalId: id, now: now).actions + rest)
    }

    private func writeMarker(
        _ key: TopicPartitionKey, producerId: Int64, producerEpoch: Int16, commit: Bool, coordinatorEpoch: Int32? = nil,
        now: Int64
    ) throws -> WrittenMarker? {
        let coordinatorEpoch = coordinatorEpoch ?? self.coordinatorEpoch.withLockedValue { $0 }
        guard let topic = storage.topic(named: key.topic),
            let partition = try producers.producers(topic: topic, partition: key.partition)
        else {
            logger.warning("no partition for a transaction marker", metadata: ["partition": "\(key)"])
            return nil
        }
        var end: Int64?
        let write = {
            let written = try partition.appendMarker(
                producerId: producerId, producerEpoch: producerEpoch, commit: commit,
                coordinatorEpoch: coordinatorEpoch, now: now)
            if written == nil {
                self.logger.warning("stale transaction marker skipped", metadata: ["partition": "\(key)", "producer": "\(producerId)"])
            }
            end = written?.logEndOffset
            return written != nil
        }
        if key.topic == InternalTopics.consumerOffsets, let writer = offsetsMarkerWriter.withLockedValue({ $0 }) {
            try writer(producerId, commit, write)
        } else {
            _ = try write()
        }
        waiters.notify(.init(topic: key.topic, partition: key.partition))
        return end.map { WrittenMarker(log: partition.log, end: $0) }
    }

    private func appendToTransactionLog(_ records: [Record]) throws {
        guard !records.isEmpty else { return }
        _ = try transactionLog.append(RecordBatch.encode(records: records, baseTimestamp: clock()))
    }
}

/// The transaction coordinator is the leader of `__transaction_state-0`: a gain recovers from what
/// the database holds (prepared transactions complete, timeouts resume) before any request is
/// served from it; a loss drops the state, so nothing is answered from transactions another
/// broker now decides.
extension TransactionService: LeadershipListener {
    static let partition = TopicPartitionKey(topicName, 0)

    func leadershipGained(_ partition: TopicPartitionKey, epoch: Int32) throws {
        guard partition == Self.partition else { return }
        load.set(.loading)
        retries.withLockedValue { r in
            r.generation += 1
            r.ids = []
        }
        coordinatorEpoch.withLockedValue { $0 = max(epoch, 0) }
        do {
            let fresh = try InternalTopics.log(Self.topicName, in: storage, logger: logger)
            log.withLockedValue { $0 = fresh }
            coordinator.withLockedValue { $0 = TransactionCoordinator(config: config) }
            lastSnapshotOffset.withLockedValue { $0 = -1 }
            try recover(now: clock())
            load.set(.serving)
        } catch {
            drop()
            throw error
        }
    }

    func leadershipLost(_ partition: TopicPartitionKey) {
        guard partition == Self.partition else { return }
        drop()
    }

    private func drop() {
        load.set(.idle)
        retries.withLockedValue { r in
            r.generation += 1
            r.ids = []
        }
        coordinator.withLockedValue { $0 = TransactionCoordinator(config: config) }
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

    /// The code for a transactional write (Produce, TxnOffsetCommit) whose partition is checked
    /// right before the append. Kafka answers a partition missing from the transaction in two
    /// places: the coordinator's verify-only check (Produce v11, TxnOffsetCommit v4: the request
    /// versions after KIP-890 part 1, before part 2) answers TRANSACTION_ABORTABLE, which
    /// `AddPartitionsToTxnManager` passes on to a client that knows it and turns into
    /// INVALID_TXN_STATE for one that does not; the log's own check of the verification guard
    /// (`UnifiedLog`, "Record was not part of an ongoing transaction") throws INVALID_TXN_STATE
    /// for every version. Under transactions V2 (Produce v12, TxnOffsetCommit v5) the coordinator
    /// adds the partition instead of verifying it, so it never answers TRANSACTION_ABORTABLE: a
    /// partition found outside the transaction after its add means the transaction ended in
    /// between, which Kafka's log check refuses with INVALID_TXN_STATE.
    func transactionalWriteErrorCode(coordinatorVerifiedOnly: Bool, clientKnowsAbortable: Bool) -> ErrorCode {
        self == .invalidTxnState && coordinatorVerifiedOnly && clientKnowsAbortable ? .transactionAbortable : partitionWriteErrorCode
    }
}
