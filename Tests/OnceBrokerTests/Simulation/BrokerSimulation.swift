import Foundation
import KafkaProtocol
import NIOCore
@testable import OnceBroker
import OnceCheck
import OnceCore
import OnceStorage

/// One seeded run: transactional producers (with zombies and KIP-360 bumps; each instance speaks
/// transactions V1 or V2), an idempotent producer with retries, a read_committed reader and
/// consumer offsets in transactions, against the production broker while it crashes, loses power
/// (under `always`), and its requests and answers are lost, duplicated and delayed: a delayed
/// Produce or EndTxn of one transaction may arrive after its producer began the next (KAFKA-17754).
/// Requests overlap: producers pipeline batches on their connection, a duplicate races its
/// original, a late Produce races its producer's next requests, heartbeats are let go and race
/// the steps after them; the seeded scheduler of `SimulatedWorld` interleaves them.
/// `run()` returns the anomalies the history shows.
final class BrokerSimulation {
    struct Options {
        var steps = 300
        var flushPolicy: FlushPolicy = .none
        var transactionalIds = 3
        var partitions: Int32 = 3
        var crashChance = 0.01
        var powerLossChance = 0.0
        var lostRequestChance = 0.03
        var lostResponseChance = 0.05
        var duplicateChance = 0.03
        var delayChance = 0.03
        /// The chance that a new producer instance speaks transactions V2 (Produce v12, EndTxn v5,
        /// TxnOffsetCommit v5: implicit adds, an epoch bump per transaction) instead of V1.
        var transactionsV2Share = 0.5
        /// Whether a V1 producer's EndTxn may be held back too. Off by default: with V1 (one epoch
        /// for many transactions) a delayed EndTxn acts on the producer's next transaction in any
        /// Kafka broker (KAFKA-17754), which only V2 closes; `v1DelayedEndTxnHole` shows it.
        var delayV1EndTxn = false
        /// KIP-848 group members heartbeating in one consumer group over `topic`.
        var groupMembers = 3
        /// Makes `topic` compacted, its records keyed from a few keys, and runs the log cleaner
        /// between steps with this chance (see BrokerSimulation+Cleaner); 0 leaves it uncompacted.
        var cleanerChance = 0.0
        /// The cleaner's offset map: small, so a pass often stops where the map filled.
        var cleanerMapBytes = 8 * OffsetMap.bytesPerEntry
        /// The chance that a producer pipelines several batches to one partition on its connection
        /// (librdkafka's max.in.flight), and that a group member's heartbeat is let go without
        /// waiting for its answer (so it races the steps after it).
        var pipelineChance = 0.3
        var backgroundHeartbeatChance = 0.5
        /// Keeps the scheduler's every pick, for the replay test.
        var recordsPicks = false
        /// Classic-protocol members (JoinGroup/SyncGroup/Heartbeat) inside the same consumer group.
        var classicGroupMembers = 2
        /// Prints every step and answer (`ONCE_SIMULATION_TRACE=1` when replaying a seed).
        var trace = ProcessInfo.processInfo.environment["ONCE_SIMULATION_TRACE"] == "1"
    }

    func trace(_ line: @autoclosure () -> String) {
        if options.trace { print("[\(seed) t=\(world.clock.now - 1_700_000_000_000)] \(line())") }
    }

    static let topic = "out"
    /// The input whose consumer offsets the transactions commit (with serial numbers, not real
    /// positions: nothing is read from it).
    static let input = "in"
    static let timeoutMs: Int32 = 10_000

    let seed: UInt64
    let options: Options
    var rng: SplitMix64
    let world: SimulatedWorld
    var history = SimulationHistory()
    private var clients: [TransactionalClient] = []
    private var idempotent = IdempotentClient()
    private var positions: [Int32: Int64] = [:]
    /// Requests held back by the network, delivered at some later step (their answers go nowhere).
    private var delayed: [(frame: SimulatedWorld.Frame, onAck: ((ProduceResponse, Int) -> Void)?, origin: DelayedOrigin?)] = []
    /// Which transaction a held-back EndTxn or transactional Produce was sent for.
    struct DelayedOrigin {
        var isEndTxn: Bool
        var client: String
        var transactionalId: String
        var transaction: String
    }
    private var nextInstance: [String: Int] = [:]
    private var groupSerial: [String: Int64] = [:]
    /// Transactional ids a coordinator snapshot held: durable whatever the flush policy.
    private var snapshotted: Set<String> = []
    private var sentOnce: Set<String> = []
    private var readerStarted: Set<Int32> = []
    /// Held-back EndTxns delivered while their producer's next transaction was open at the
    /// coordinator: the KAFKA-17754 situation, counted so a test knows it happened.
    private(set) var lateEndsWhileNextOpen = 0
    /// Held-back Produce requests of a V2 producer delivered after it began its next transaction
    /// (each must be refused: the end bumped the epoch).
    private(set) var lateV2Produces = 0
    /// Cleaner passes that rewrote a partition, and the read_committed records they removed.
    var cleanerPasses = 0
    var removedByCleaner = 0
    var abortMarkersRemoved = 0
    /// The KIP-848 members and what each believes it owns (see BrokerSimulation+Groups).
    var groupMembers: [SimulatedGroupMember] = []
    var nextGroupMember = 0
    /// The classic members inside that group (see BrokerSimulation+ClassicMembers).
    var classicMembers: [SimulatedClassicMember] = []

    init(seed: UInt64, options: Options) throws {
        self.seed = seed
        self.options = options
        rng = SplitMix64(seed: seed)
        world = try SimulatedWorld(
            seed: seed, flushPolicy: options.flushPolicy, topics: [Self.topic: options.partitions, Self.input: 1],
            configs: options.cleanerChance > 0 ? [Self.topic: Self.compactedConfig] : [:], recordsPicks: options.recordsPicks)
        for i in 0..<options.transactionalIds { clients.append(newInstance(of: "t\(i)")) }
        for _ in 0..<options.groupMembers { groupMembers.append(newGroupMember()) }
        classicMembers = Array(repeating: SimulatedClassicMember(), count: options.classicGroupMembers)
    }

    private func newInstance(of id: String) -> TransactionalClient {
        let instance = nextInstance[id, default: 0]
        nextInstance[id] = instance + 1
        return TransactionalClient(transactionalId: id, instance: instance, v2: rng.chance(options.transactionsV2Share))
    }

    // MARK: The run

    func run() async throws -> [String] {
        for _ in 0..<options.steps {
            try await step()
        }
        try await finish()
        return history.anomalies
    }

    private func step() async throws {
        // The scheduler runs jobs on this task's thread without suspending; yielding once a step
        // leaves the cooperative pool to the tests running beside the simulation.
        await Task.yield()
        world.collect()
        let roll = Double.random(in: 0..<1, using: &rng)
        if roll < options.crashChance {
            trace("crash")
            try await keepingReadCommittedView {
                try world.crash()
                forgetAnswersInFlight()
            }
        } else if roll < options.crashChance + options.powerLossChance {
            trace("power loss")
            snapshotted.formUnion(try world.snapshottedTransactionalIds())
            try world.powerLoss { Int.random(in: 0...$0, using: &rng) }
            forgetAnswersInFlight()
            let known = Set(world.broker.transactions.transactions.map(\.transactionalId))
            for id in snapshotted.subtracting(known).sorted() {
                history.note("the coordinator forgot \(id) after a power cut, though a snapshot held it")
            }
            // Only `always` promises anything across a power cut.
            if options.flushPolicy != .always { history.acknowledgementsAreDurable = false }
        } else if roll < 0.12 {
            world.advanceClock(by: Int64.random(in: 1...3_000, using: &rng))
            snapshotted.formUnion(try world.snapshottedTransactionalIds())
        } else if roll < 0.16, !delayed.isEmpty {
            let index = Int.random(in: 0..<delayed.count, using: &rng)
            let held = delayed.remove(at: index)
            trace("delayed request \(held.frame.apiKey) let go")
            if let origin = held.origin, origin.isEndTxn {
                await deliverDelayedEnd(held.frame, origin)
            } else {
                // The late request races whatever its producer does next (its EndTxn, the next
                // transaction's writes) on a connection of its own.
                let late = held.origin.flatMap(isLate)
                let onAck = held.onAck
                world.send(held.frame, on: "late", as: ProduceResponse.self) { [self] response, servedAt in
                    guard let response else { return }
                    if let late { checkLateProduce(response, late) }
                    onAck?(response, servedAt)
                }
            }
        } else if roll < 0.19 {
            // A new instance of an id: the old one becomes a zombie that keeps trying.
            let victim = Int.random(in: 0..<clients.count, using: &rng)
            if clients.filter({ $0.transactionalId == clients[victim].transactionalId }).count < 2 {
                clients.append(newInstance(of: clients[victim].transactionalId))
            }
        } else if roll < 0.27 {
            try await idempotentStep()
        } else if roll < 0.37 {
            try await readStep()
        } else if roll < 0.45, !groupMembers.isEmpty || !classicMembers.isEmpty {
            if classicMembers.isEmpty || (!groupMembers.isEmpty && rng.chance(0.6)) {
                await groupMemberStep()
            } else {
                await classicMemberStep()
            }
        } else if roll < 0.45 + options.cleanerChance {
            try await cleanerStep()
        } else {
            let index = Int.random(in: 0..<clients.count, using: &rng)
            var client = clients[index]
            try await transactionalStep(&client)
            clients[index] = client
            clients.removeAll { $0.isDone }
            if clients.isEmpty { clients.append(newInstance(of: "t0")) }
        }
    }

    /// A restart dropped every request in flight: their answers never come.
    private func forgetAnswersInFlight() {
        for i in groupMembers.indices where groupMembers[i].awaiting {
            groupMembers[i].awaiting = false
            groupMembers[i].needsFull = true
        }
    }

    /// A held-back EndTxn arrives. If its producer has since begun another transaction and the
    /// coordinator holds that one open, the late EndTxn must not end it: with V2 the bumped epoch
    /// fences it; with V1 nothing can tell the two transactions apart (KAFKA-17754).
    private func deliverDelayedEnd(_ frame: SimulatedWorld.Frame, _ end: DelayedOrigin) async {
        let current = clients.first { $0.name == end.client }?.currentTransaction
        let before = world.broker.transactions.transactions.first { $0.transactionalId == end.transactionalId }
        let response = await world.deliver(frame, as: EndTxnResponse.self)
        let after = world.broker.transactions.transactions.first { $0.transactionalId == end.transactionalId }
        trace("  delayed end of \(end.transaction): \(response.map { ErrorCode($0.errorCode) }.map(String.init(describing:)) ?? "no answer")")
        guard let current, current != end.transaction, before?.state == .ongoing else { return }
        lateEndsWhileNextOpen += 1
        if response?.errorCode == 0, after?.state != .ongoing, history.acknowledgementsAreDurable {
            history.note("a delayed EndTxn of \(end.transaction) ended \(current), its producer's next transaction (KAFKA-17754)")
        }
    }

    /// A held-back Produce of a V2 producer that has since begun another transaction (decided
    /// when the network lets it go): its transaction ended with an epoch bump (EndTxn, a timeout or
    /// a KIP-360 bump), so the partition must refuse it rather than let it join the next one.
    private func isLate(_ origin: DelayedOrigin) -> (origin: DelayedOrigin, current: String)? {
        guard let client = clients.first(where: { $0.name == origin.client }), client.v2,
            let current = client.currentTransaction, current != origin.transaction
        else { return nil }
        lateV2Produces += 1
        return (origin, current)
    }

    /// The answer to a late Produce (KAFKA-17754): it must have been refused.
    private func checkLateProduce(_ response: ProduceResponse, _ late: (origin: DelayedOrigin, current: String)) {
        let (origin, current) = late
        let code = response.responses.first?.partitionResponses.first.map { ErrorCode($0.errorCode) }
        // A power cut under a policy that does not sync may take the bump back with the tail of
        // the transaction log; then the old epoch is current again and nothing is owed.
        if code == ErrorCode.none && history.acknowledgementsAreDurable {
            history.note("a delayed Produce of \(origin.transaction) was appended after its producer began \(current) (KAFKA-17754)")
        }
    }

    /// Ends every transaction, lets timeouts and marker retries run, and checks the result.
    private func finish() async throws {
        delayed.removeAll()
        world.settle()
        var rounds = 0
        while clients.contains(where: { $0.isBusy }) && rounds < 200 {
            rounds += 1
            for index in clients.indices where clients[index].isBusy {
                var client = clients[index]
                client.finishing = true
                try await transactionalStep(&client, faults: false)
                clients[index] = client
            }
        }
        // Partitions load on first use; a reader's first fetch loads them all, then the periodic
        // checks run.
        for partition in 0..<options.partitions { _ = try world.broker.stableView(Self.topic, partition, from: 0) }
        for _ in 0..<4 {
            world.advanceClock(by: Int64(Self.timeoutMs) + 6_000)
        }
        // How each transaction ended, as its client knows it: a commit sent but never answered is
        // for the broker to have decided; one never asked to commit is aborted.
        for (key, txn) in history.transactions.sorted(by: { $0.key < $1.key }) where !txn.commitAcked && !txn.abortAcked {
            history.events.append(.transactionEnded(transaction: key, outcome: txn.commitDelivered ? .unknown : .aborted))
        }
        for txn in world.broker.transactions.transactions where txn.state == .prepareCommit || txn.state == .prepareAbort {
            history.note("transaction \(txn.transactionalId) still \(txn.state.name) at the end")
        }
        var committed: [Int32: [(offset: Int64, value: String)]] = [:]
        var uncommitted: [String] = []
        for partition in 0..<options.partitions {
            let log = world.storage.partition(topic: Self.topic, partition: partition)!
            let view = try world.broker.stableView(Self.topic, partition, from: 0)
            if view.lastStableOffset != log.highWatermark {
                history.note("partition \(partition): LSO \(view.lastStableOffset) held below the high watermark \(log.highWatermark) at the end")
            }
            committed[partition] = try await fetchAll(partition, isolation: 1)
            history.events.append(.readerStarted(reader: "final", topic: Self.topic, partition: partition, position: 0))
            for record in committed[partition]! {
                history.events.append(.recordRead(
                    reader: "final", topic: Self.topic, partition: partition, offset: record.offset, record: record.value))
            }
            history.events.append(.readerReachedEnd(reader: "final", topic: Self.topic, partition: partition, position: log.highWatermark))
            uncommitted += try await fetchAll(partition, isolation: 0).map(\.value)
        }
        var offsets: [String: Int64] = [:]
        for id in Set(clients.map(\.transactionalId)).union(groupSerial.keys).sorted() {
            if let offset = try await committedOffset(group: "g-\(id)") {
                offsets["g-\(id)"] = offset
                history.events.append(.committedOffsetObserved(group: "g-\(id)", topic: Self.input, partition: 0, offset: offset))
            }
        }
        history.check(
            committed: committed, uncommitted: uncommitted, groupOffsets: offsets,
            ackedWritesMustSurvive: history.acknowledgementsAreDurable, compacted: options.cleanerChance > 0)
    }

    // MARK: Delivery through the simulated network

    enum Delivery<R> {
        case answered(R)
        /// Lost on the way there or back, or held back: the client cannot tell which.
        case noAnswer
    }

    func send<R: KafkaRequest>(
        _ request: R, version: Int16, on connection: String = "client", faults: Bool = true, delayable: Bool = false,
        origin: DelayedOrigin? = nil, onDelayedAck: ((ProduceResponse, Int) -> Void)? = nil, delivered: () -> Void = {}
    ) async -> Delivery<R.Response> {
        let frame = world.frame(request, version: version)
        if faults {
            if rng.chance(options.lostRequestChance) { return .noAnswer }
            if delayable && rng.chance(options.delayChance) {
                delayed.append((frame, onDelayedAck, origin))
                delivered()
                return .noAnswer
            }
            if rng.chance(options.duplicateChance) {
                // The copy (a retry on a new connection) and the original are in flight together.
                delivered()
                let copy = world.submit(frame, on: connection + "/retry")
                let original = world.submit(frame, on: connection)
                if R.Response.self == ProduceResponse.self, let onDelayedAck,
                    let first = world.wait(copy, as: ProduceResponse.self)
                {
                    onDelayedAck(first, copy.servedAt)
                }
                return answered(world.wait(original, as: R.Response.self), faults: faults)
            }
        }
        delivered()
        return answered(await world.deliver(frame, on: connection, as: R.Response.self), faults: faults)
    }

    private func answered<Response>(_ response: Response?, faults: Bool) -> Delivery<Response> {
        guard let response else { return .noAnswer }
        if faults && rng.chance(options.lostResponseChance) {
            trace("  answer lost: \(response)")
            return .noAnswer
        }
        return .answered(response)
    }

    // MARK: Transactional clients

    private static let retriable: Set<ErrorCode> = [
        .concurrentTransactions, .coordinatorLoadInProgress, .coordinatorNotAvailable, .notCoordinator, .kafkaStorageError,
    ]
    private static let fenced: Set<ErrorCode> = [.producerFenced, .invalidProducerEpoch, .invalidProducerIdMapping]

    private func transactionalStep(_ c: inout TransactionalClient, faults: Bool = true) async throws {
        trace("\(c.transactionalId)#\(c.instance) p\(c.producerId)e\(c.epoch) \(c.phase)")
        switch c.phase {
        case .needsInit(let expected):
            var req = InitProducerIdRequest()
            req.transactionalId = c.transactionalId
            req.transactionTimeoutMs = Self.timeoutMs
            req.producerId = expected?.producerId ?? -1
            req.producerEpoch = expected?.epoch ?? -1
            guard case .answered(let r) = await send(req, version: 4, on: c.name, faults: faults, delayable: true) else { return }
            let code = ErrorCode(r.errorCode)
            if code == .none {
                history.epochGranted(
                    c.transactionalId, instance: c.instance, producerId: r.producerId, epoch: r.producerEpoch,
                    at: world.lastWaited!.answeredAt)
                history.events.append(.producerInitialized(
                    transactionalId: c.transactionalId, instance: c.name, producerId: r.producerId, epoch: r.producerEpoch))
                c.producerId = r.producerId
                c.epoch = r.producerEpoch
                c.sequences = [:]
                c.phase = .idle
            } else if Self.fenced.contains(code) {
                fence(&c)
            }
        case .idle:
            guard !c.finishing else { c.phase = .dead; return }
            c.serial += 1
            let key = "\(c.transactionalId)/\(c.instance)/\(c.serial)"
            let count = Int.random(in: 1...Int(options.partitions), using: &rng)
            let partitions = Array((0..<options.partitions).shuffled(using: &rng).prefix(count)).sorted()
            var offset: Int64?
            if rng.chance(0.5) {
                let next = groupSerial[c.transactionalId, default: 0] + 1
                groupSerial[c.transactionalId] = next
                offset = next
            }
            history.transactions[key] = .init(transactionalId: c.transactionalId, instance: c.instance, groupOffset: offset)
            history.events.append(.transactionBegan(
                transaction: key, transactionalId: c.transactionalId, instance: c.name, producerId: c.producerId, epoch: c.epoch))
            // V2: partitions and offsets join with their first write; there is nothing to add.
            c.phase = .open(.init(
                key: key, partitions: partitions, batches: Int.random(in: 1...4, using: &rng), groupOffset: offset,
                commit: rng.chance(0.7), added: c.v2, offsetsAdded: c.v2))
        case .open(var txn):
            try await openStep(&c, &txn, faults: faults)
        case .ending(let txn):
            var req = EndTxnRequest()
            req.transactionalId = c.transactionalId
            req.producerId = c.producerId
            req.producerEpoch = c.epoch
            req.committed = txn.commit
            let key = txn.key
            let answer = await send(
                req, version: c.v2 ? 5 : 3, on: c.name, faults: faults, delayable: c.v2 || options.delayV1EndTxn,
                origin: DelayedOrigin(isEndTxn: true, client: c.name, transactionalId: c.transactionalId, transaction: key),
                delivered: { if txn.commit { self.history.transactions[key]?.commitDelivered = true } })
            guard case .answered(let r) = answer else { return }
            let code = ErrorCode(r.errorCode)
            trace("  end \(txn.key) commit=\(txn.commit): \(code) p\(r.producerId)e\(r.producerEpoch)")
            if code == .none {
                if txn.commit { history.transactions[key]?.commitAcked = true } else { history.transactions[key]?.abortAcked = true }
                history.events.append(.transactionEnded(transaction: key, outcome: txn.commit ? .committed : .aborted))
                if c.v2 {
                    // V2: the end bumped the epoch (or moved to a new producer id); sequences restart.
                    history.epochGranted(
                        c.transactionalId, instance: c.instance, producerId: r.producerId, epoch: r.producerEpoch,
                        at: world.lastWaited!.answeredAt)
                    history.events.append(.producerInitialized(
                        transactionalId: c.transactionalId, instance: c.name, producerId: r.producerId, epoch: r.producerEpoch))
                    c.producerId = r.producerId
                    c.epoch = r.producerEpoch
                    c.sequences = [:]
                }
                // After an abort the producer bumps its own epoch (KIP-360): with V1 always when a
                // batch went unanswered (its sequence must not be reused), sometimes otherwise.
                let bump = !txn.commit && ((!c.v2 && txn.pendingValues != nil) || rng.chance(0.3))
                c.phase = bump ? .needsInit(expected: (c.producerId, c.epoch)) : .idle
            } else if Self.fenced.contains(code) {
                fence(&c)
            } else if !Self.retriable.contains(code) {
                // INVALID_TXN_STATE: the coordinator already ended it (a timeout); start over.
                c.phase = .idle
            }
        case .dead:
            break
        }
    }

    private func openStep(_ c: inout TransactionalClient, _ txn: inout TransactionalClient.Open, faults: Bool) async throws {
        defer { if case .open = c.phase { c.phase = .open(txn) } }
        if c.finishing && !txn.finishingDecided {
            txn.finishingDecided = true
            // A batch still unanswered can only be given up with an abort, as clients do.
            txn.commit = txn.pendingValues == nil && rng.chance(0.5)
        }
        if !txn.added {
            var t = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic()
            t.name = Self.topic
            t.partitions = txn.partitions
            var req = AddPartitionsToTxnRequest()
            req.v3AndBelowTransactionalId = c.transactionalId
            req.v3AndBelowProducerId = c.producerId
            req.v3AndBelowProducerEpoch = c.epoch
            req.v3AndBelowTopics = [t]
            guard case .answered(let r) = await send(req, version: 3, on: c.name, faults: faults, delayable: true) else { return }
            let codes = Set(r.resultsByTopicV3AndBelow.flatMap { $0.resultsByPartition.map { ErrorCode($0.partitionErrorCode) } })
            if codes == [.none] { txn.added = true } else { handle(codes, &c, txn) }
            return
        }
        if let offset = txn.groupOffset, !txn.offsetsCommitted {
            if !txn.offsetsAdded {
                var req = AddOffsetsToTxnRequest()
                req.transactionalId = c.transactionalId
                req.producerId = c.producerId
                req.producerEpoch = c.epoch
                req.groupId = "g-\(c.transactionalId)"
                guard case .answered(let r) = await send(req, version: 3, on: c.name, faults: faults) else { return }
                if r.errorCode == 0 { txn.offsetsAdded = true } else { handle([ErrorCode(r.errorCode)], &c, txn) }
                return
            }
            var p = TxnOffsetCommitRequest.TxnOffsetCommitRequestPartition()
            p.partitionIndex = 0
            p.committedOffset = offset
            var t = TxnOffsetCommitRequest.TxnOffsetCommitRequestTopic()
            t.name = Self.input
            t.partitions = [p]
            var req = TxnOffsetCommitRequest()
            req.transactionalId = c.transactionalId
            req.groupId = "g-\(c.transactionalId)"
            req.producerId = c.producerId
            req.producerEpoch = c.epoch
            req.generationId = -1
            req.topics = [t]
            guard case .answered(let r) = await send(req, version: c.v2 ? 5 : 3, on: c.name, faults: faults) else { return }
            let code = ErrorCode(r.topics[0].partitions[0].errorCode)
            if code == .none {
                txn.offsetsCommitted = true
                history.events.append(.offsetsSent(
                    transaction: txn.key, group: "g-\(c.transactionalId)", topic: Self.input, partition: 0, offset: offset))
            } else {
                handle([code], &c, txn)
            }
            return
        }
        guard txn.produced < txn.batches && !c.finishing else {
            c.phase = .ending(txn)
            return
        }
        let partition = txn.partitions[txn.produced % txn.partitions.count]
        if faults, txn.pendingValues == nil, txn.batches - txn.produced >= 2, rng.chance(options.pipelineChance) {
            return pipeline(&c, &txn, partition: partition)
        }
        let values = (0..<Int.random(in: 1...3, using: &rng)).map { "\(txn.key)/\(txn.produced)/\($0)" }
        let pending = txn.pendingValues ?? values
        txn.pendingValues = pending
        let sequence = c.sequences[partition, default: 0]
        let records = pending.enumerated().map { Record(offsetDelta: Int32($0.offset), key: recordKey(of: $0.element), value: Array($0.element.utf8)) }
        let batch = RecordBatch.encode(
            records: records, baseTimestamp: world.clock.now, producerId: c.producerId, producerEpoch: c.epoch,
            baseSequence: sequence, isTransactional: true)
        var req = Self.produceRequest(partition: partition, batch: batch)
        if c.v2 { req.transactionalId = c.transactionalId }
        let (id, pid, epoch, key) = (c.transactionalId, c.producerId, c.epoch, txn.key)
        let origin = DelayedOrigin(isEndTxn: false, client: c.name, transactionalId: c.transactionalId, transaction: txn.key)
        let answer = await send(req, version: c.v2 ? 12 : 9, on: c.name, faults: faults, delayable: true, origin: origin, onDelayedAck: { [self] response, servedAt in
            if response.responses.first?.partitionResponses.first?.errorCode == 0 {
                history.appendAcked(id, producerId: pid, epoch: epoch, values: pending, servedAt: servedAt)
            }
        }, delivered: { self.sent(pending, transaction: key, partition: partition) })
        guard case .answered(let r) = answer else { return }
        let code = ErrorCode(r.responses[0].partitionResponses[0].errorCode)
        trace("  produce \(pending) to \(partition) seq \(sequence): \(code) at \(r.responses[0].partitionResponses[0].baseOffset)")
        if code == .none {
            history.appendAcked(id, producerId: pid, epoch: epoch, values: pending, servedAt: world.lastWaited!.servedAt)
            history.transactions[key]?.acked.formUnion(pending)
            acknowledged(pending, at: r.responses[0].partitionResponses[0].baseOffset)
            c.sequences[partition] = sequence + Int32(pending.count)
            txn.pendingValues = nil
            txn.produced += 1
        } else {
            handle([code], &c, txn)
        }
    }

    /// The rest of the transaction's batches to one partition, sent back to back on the producer's
    /// connection as librdkafka does with max.in.flight, answered in order. The connection is
    /// healthy (nothing lost), so a batch refused as out of order after the one before it was
    /// appended means the broker appended them out of order.
    private func pipeline(_ c: inout TransactionalClient, _ txn: inout TransactionalClient.Open, partition: Int32) {
        let count = min(txn.batches - txn.produced, 3)
        var sequence = c.sequences[partition, default: 0]
        var batches: [(values: [String], sequence: Int32, request: SimulatedWorld.InFlight)] = []
        for i in 0..<count {
            let values = (0..<Int.random(in: 1...3, using: &rng)).map { "\(txn.key)/\(txn.produced + i)/\($0)" }
            let batch = RecordBatch.encode(
                records: values.enumerated().map { Record(offsetDelta: Int32($0.offset), key: nil, value: Array($0.element.utf8)) },
                baseTimestamp: world.clock.now, producerId: c.producerId, producerEpoch: c.epoch,
                baseSequence: sequence, isTransactional: true)
            var req = Self.produceRequest(partition: partition, batch: batch)
            if c.v2 { req.transactionalId = c.transactionalId }
            sent(values, transaction: txn.key, partition: partition)
            batches.append((values, sequence, world.submit(world.frame(req, version: c.v2 ? 12 : 9), on: c.name)))
            sequence += Int32(values.count)
        }
        var failed = false
        var previousAppended = false
        for (values, sequence, request) in batches {
            guard let r = world.wait(request, as: ProduceResponse.self) else { return }
            let answer = r.responses[0].partitionResponses[0]
            let code = ErrorCode(answer.errorCode)
            trace("  pipelined produce \(values) to \(partition) seq \(sequence): \(code) at \(answer.baseOffset)")
            // After a power cut a policy that does not sync may hand one epoch to two instances
            // (see `acknowledgementsAreDurable`), whose batches then collide; nothing is owed.
            if code == .outOfOrderSequenceNumber && previousAppended && history.acknowledgementsAreDurable {
                history.note("\(c.name): pipelined batch at sequence \(sequence) of partition \(partition) was refused as out of order after the batch before it on the same connection was appended")
            }
            previousAppended = code == .none
            guard code == .none else {
                if !failed { handle([code], &c, txn) }
                failed = true
                continue
            }
            history.appendAcked(
                c.transactionalId, producerId: c.producerId, epoch: c.epoch, values: values, servedAt: request.servedAt)
            history.transactions[txn.key]?.acked.formUnion(values)
            acknowledged(values, at: answer.baseOffset)
            c.sequences[partition] = sequence + Int32(values.count)
            txn.produced += 1
        }
    }

    /// A failed transactional request: fenced producers stop, retriable errors retry, anything
    /// else aborts the transaction.
    private func handle(_ codes: Set<ErrorCode>, _ c: inout TransactionalClient, _ txn: TransactionalClient.Open) {
        if !codes.isDisjoint(with: Self.fenced) {
            fence(&c)
        } else if codes.isSubset(of: Self.retriable.union([.none, .operationNotAttempted])) {
            return
        } else {
            var aborting = txn
            aborting.commit = false
            c.phase = .ending(aborting)
        }
    }

    private func fence(_ c: inout TransactionalClient) {
        history.events.append(.fenced(transactionalId: c.transactionalId, instance: c.name, producerId: c.producerId, epoch: c.epoch))
        c.phase = .dead
    }

    private func sent(_ values: [String], transaction: String?, partition: Int32) {
        if let transaction { history.transactions[transaction]?.sent.formUnion(values) }
        for value in values where sentOnce.insert(value).inserted {
            history.events.append(.recordSent(
                record: value, transaction: transaction, topic: Self.topic, partition: partition, key: nil, value: nil, source: nil))
        }
    }

    private func acknowledged(_ values: [String], at base: Int64) {
        for (i, value) in values.enumerated() { history.events.append(.recordAcknowledged(record: value, offset: base + Int64(i))) }
    }

    static func produceRequest(partition: Int32, batch: ByteBuffer) -> ProduceRequest {
        var p = ProduceRequest.PartitionProduceData()
        p.index = partition
        p.records = batch
        var t = ProduceRequest.TopicProduceData()
        t.name = topic
        t.partitionData = [p]
        var req = ProduceRequest()
        req.acks = -1
        req.timeoutMs = 5_000
        req.topicData = [t]
        return req
    }

    // MARK: The idempotent producer

    private func idempotentStep() async throws {
        guard idempotent.producerId >= 0 else {
            var req = InitProducerIdRequest()
            req.transactionTimeoutMs = Self.timeoutMs
            req.producerId = -1
            req.producerEpoch = -1
            if case .answered(let r) = await send(req, version: 4, on: "idempotent"), r.errorCode == 0 {
                idempotent.producerId = r.producerId
                idempotent.epoch = r.producerEpoch
            }
            return
        }
        if idempotent.pending == nil && rng.chance(options.pipelineChance) {
            return idempotentPipeline()
        }
        if idempotent.pending == nil {
            idempotent.serial += 1
            let partition = Int32.random(in: 0..<options.partitions, using: &rng)
            idempotent.pending = (partition, (0..<Int.random(in: 1...3, using: &rng)).map { "i/\(idempotent.serial)/\($0)" })
        }
        let (partition, values) = idempotent.pending!
        let sequence = idempotent.sequences[partition, default: 0]
        let batch = RecordBatch.encode(
            records: values.enumerated().map { Record(offsetDelta: Int32($0.offset), key: recordKey(of: $0.element), value: Array($0.element.utf8)) },
            baseTimestamp: world.clock.now, producerId: idempotent.producerId, producerEpoch: idempotent.epoch,
            baseSequence: sequence)
        guard case .answered(let r) = await send(
            Self.produceRequest(partition: partition, batch: batch), version: 9, delayable: true,
            delivered: { self.sent(values, transaction: nil, partition: partition) })
        else { return }
        let code = ErrorCode(r.responses[0].partitionResponses[0].errorCode)
        if code == .none {
            history.idempotentAcked.formUnion(values)
            acknowledged(values, at: r.responses[0].partitionResponses[0].baseOffset)
            idempotent.sequences[partition] = sequence + Int32(values.count)
            idempotent.pending = nil
        } else if code == .outOfOrderSequenceNumber || code == .unknownProducerId {
            // Its state is gone (a power cut before the sync): a new producer id, as librdkafka does.
            idempotent = IdempotentClient(serial: idempotent.serial)
        }
    }

    /// Two to four batches to one partition back to back on one healthy connection, answered in
    /// order (see `pipeline`).
    private func idempotentPipeline() {
        let partition = Int32.random(in: 0..<options.partitions, using: &rng)
        var sequence = idempotent.sequences[partition, default: 0]
        var batches: [(values: [String], sequence: Int32, request: SimulatedWorld.InFlight)] = []
        for _ in 0..<Int.random(in: 2...4, using: &rng) {
            idempotent.serial += 1
            let values = (0..<Int.random(in: 1...3, using: &rng)).map { "i/\(idempotent.serial)/\($0)" }
            let batch = RecordBatch.encode(
                records: values.enumerated().map { Record(offsetDelta: Int32($0.offset), key: nil, value: Array($0.element.utf8)) },
                baseTimestamp: world.clock.now, producerId: idempotent.producerId, producerEpoch: idempotent.epoch,
                baseSequence: sequence)
            sent(values, transaction: nil, partition: partition)
            let frame = world.frame(Self.produceRequest(partition: partition, batch: batch), version: 9)
            batches.append((values, sequence, world.submit(frame, on: "idempotent")))
            sequence += Int32(values.count)
        }
        var previousAppended = false
        var reset = false
        for (values, sequence, request) in batches {
            guard let r = world.wait(request, as: ProduceResponse.self) else { return }
            let answer = r.responses[0].partitionResponses[0]
            let code = ErrorCode(answer.errorCode)
            if code == .outOfOrderSequenceNumber && previousAppended && history.acknowledgementsAreDurable {
                history.note("idempotent producer: pipelined batch at sequence \(sequence) of partition \(partition) was refused as out of order after the batch before it on the same connection was appended")
            }
            previousAppended = code == .none
            if code == .none {
                history.idempotentAcked.formUnion(values)
                acknowledged(values, at: answer.baseOffset)
                idempotent.sequences[partition] = sequence + Int32(values.count)
            } else if code == .outOfOrderSequenceNumber || code == .unknownProducerId {
                reset = true
            }
        }
        if reset { idempotent = IdempotentClient(serial: idempotent.serial) }
    }

    // MARK: The read_committed reader

    private func readStep() async throws {
        let partition = Int32.random(in: 0..<options.partitions, using: &rng)
        let from = positions[partition, default: 0]
        guard let records = try await fetch(partition, from: from, isolation: 1) else { return }
        if readerStarted.insert(partition).inserted {
            history.events.append(.readerStarted(reader: "reader", topic: Self.topic, partition: partition, position: from))
        }
        for record in records.records {
            history.reads[partition, default: []].append((record.offset, record.value))
            history.events.append(.recordRead(
                reader: "reader", topic: Self.topic, partition: partition, offset: record.offset, record: record.value))
        }
        positions[partition] = records.next
    }

    func fetchAll(_ partition: Int32, isolation: Int8) async throws -> [(offset: Int64, value: String)] {
        var all: [(offset: Int64, value: String)] = []
        var from: Int64 = 0
        while let page = try await fetch(partition, from: from, isolation: isolation, faults: false), page.next > from {
            all += page.records
            from = page.next
        }
        return all
    }

    /// A fetch as a consumer does it: drops aborted transactions' records (the aborted list and
    /// the markers), skips control batches. Nil when no answer came back.
    private func fetch(_ partition: Int32, from: Int64, isolation: Int8, faults: Bool = true) async throws
        -> (records: [(offset: Int64, value: String)], next: Int64)?
    {
        var p = FetchRequest.FetchPartition()
        p.partition = partition
        p.fetchOffset = from
        p.partitionMaxBytes = 1 << 20
        var t = FetchRequest.FetchTopic()
        t.topic = Self.topic
        t.partitions = [p]
        var req = FetchRequest()
        req.maxWaitMs = 0
        req.minBytes = 0
        req.maxBytes = 1 << 20
        req.isolationLevel = isolation
        req.topics = [t]
        guard case .answered(let r) = await send(req, version: 12, on: "reader", faults: faults) else { return nil }
        let data = r.responses[0].partitions[0]
        if ErrorCode(data.errorCode) == .offsetOutOfRange && !history.acknowledgementsAreDurable {
            // A power cut took back what the reader had read: it starts over, as auto.offset.reset does.
            return ([], 0)
        }
        guard data.errorCode == 0 else {
            history.note("fetch of partition \(partition) at \(from) failed with \(ErrorCode(data.errorCode))")
            return nil
        }
        var aborted = (data.abortedTransactions ?? []).sorted { $0.firstOffset < $1.firstOffset }
        var aborting = Set<Int64>()
        var records: [(offset: Int64, value: String)] = []
        var next = from
        for batch in try RecordBatch.decodeAll(from: data.records ?? ByteBuffer()) {
            next = batch.header.nextOffset
            while let first = aborted.first, first.firstOffset <= batch.header.lastOffset {
                aborting.insert(first.producerId)
                aborted.removeFirst()
            }
            if batch.header.isControl {
                aborting.remove(batch.header.producerId)
                continue
            }
            if isolation == 1 && batch.header.isTransactional && aborting.contains(batch.header.producerId) { continue }
            for record in batch.records where batch.offset(of: record) >= from {
                records.append((batch.offset(of: record), String(decoding: record.value ?? [], as: UTF8.self)))
            }
        }
        return (records, next)
    }

    private func committedOffset(group: String) async throws -> Int64? {
        var t = OffsetFetchRequest.OffsetFetchRequestTopic()
        t.name = Self.input
        t.partitionIndexes = [0]
        var req = OffsetFetchRequest()
        req.groupId = group
        req.topics = [t]
        guard case .answered(let r) = await send(req, version: 7, faults: false) else { return nil }
        let offset = r.topics.first?.partitions.first?.committedOffset ?? -1
        return offset >= 0 ? offset : nil
    }
}

/// A transactional producer instance as a client library runs it: one request per step.
struct TransactionalClient {
    let transactionalId: String
    let instance: Int
    /// Speaks transactions V2 (KIP-890 part 2) rather than V1.
    let v2: Bool
    var producerId: Int64 = -1
    var epoch: Int16 = -1
    var sequences: [Int32: Int32] = [:]
    var serial = 0
    var finishing = false
    var phase: Phase = .needsInit(expected: nil)

    enum Phase {
        case needsInit(expected: (producerId: Int64, epoch: Int16)?)
        case idle
        case open(Open)
        case ending(Open)
        /// Fenced: this instance is finished.
        case dead
    }

    struct Open {
        var key: String
        var partitions: [Int32]
        var batches: Int
        var groupOffset: Int64?
        var commit: Bool
        var added = false
        var offsetsAdded = false
        var offsetsCommitted = false
        var produced = 0
        /// A batch sent without an answer: retried with the same values and sequence.
        var pendingValues: [String]?
        var finishingDecided = false
    }

    var name: String { "\(transactionalId)#\(instance)\(v2 ? "v2" : "")" }
    /// The transaction this instance has open or is ending, if any.
    var currentTransaction: String? {
        switch phase {
        case .open(let txn), .ending(let txn): txn.key
        case .needsInit, .idle, .dead: nil
        }
    }
    var isDone: Bool { if case .dead = phase { true } else { false } }
    var isBusy: Bool {
        switch phase {
        case .open, .ending, .needsInit: true
        case .idle, .dead: false
        }
    }
}

struct IdempotentClient {
    var producerId: Int64 = -1
    var epoch: Int16 = -1
    var serial = 0
    var sequences: [Int32: Int32] = [:]
    var pending: (partition: Int32, values: [String])?
}
