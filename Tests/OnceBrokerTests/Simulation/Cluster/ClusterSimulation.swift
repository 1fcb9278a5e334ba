import KafkaProtocol
import NIOCore
import OnceCheck
@testable import OnceBroker
import OnceCore

/// One seeded run of a simulated cluster: brokers over one simulated database, an idempotent
/// producer and a read_committed reader that find leaders through Metadata and follow
/// NOT_LEADER_OR_FOLLOWER and FENCED_LEADER_EPOCH as real clients do, and the faults a cluster
/// meets (a broker SIGKILLed and restarted, paused past its session and woken, leaving and joining,
/// the database unreachable for a while, a commit whose answer is lost). The history goes through
/// OnceCheck and the simulated database's own invariants.
final class ClusterSimulation {
    struct Options {
        var brokers: Int32 = 3
        var partitions: Int32 = 6
        var steps = 60
        var faultChance = 0.12
        /// Test-only defect: the database commits an append round whatever its lease says.
        var ignoresLeaseEpoch = false
        var transactionalIds = 2
        /// The chance that a transactional producer instance speaks transactions V2.
        var transactionsV2Share = 0.5
        /// Test-only defect: the network between the brokers answers every WriteTxnMarkers as
        /// written and delivers none (see `SimulatedBrokerNetwork.claimsMarkersWritten`).
        var claimsRemoteMarkersWritten = false
    }

    static let transactionTimeoutMs: Int64 = 10_000

    static let topic = "orders"
    let seed: UInt64
    let options: Options
    let world: ClusterWorld
    var rng: SplitMix64
    var events: [HistoryEvent] = []
    var anomalies: [String] = []
    /// What the clients' history and the committed log show, without the database's own
    /// record of who committed under which epoch.
    private(set) var clientAnomalies: [String] = []
    var leaders: [Int32: (node: Int32, epoch: Int32)] = [:]
    var transactional: [ClusterTransactionalClient] = []
    private var producers = [IdempotentClient(), IdempotentClient()]
    private var acked: [String: Int64] = [:]
    private var positions: [Int32: Int64] = [:]
    private var readerStarted: Set<Int32> = []
    private var down: [Int32: Int] = [:]
    private(set) var trace: [String] = []
    private(set) var leaderChanges = 0

    init(seed: UInt64, options: Options = Options(), recordsPicks: Bool = false) {
        self.seed = seed
        self.options = options
        rng = SplitMix64(seed: seed)
        world = ClusterWorld(seed: seed, recordsPicks: recordsPicks)
        world.database.ignoresLeaseEpoch = options.ignoresLeaseEpoch
        world.network.claimsMarkersWritten = options.claimsRemoteMarkersWritten
        var rng = rng
        transactional = (0..<options.transactionalIds).map {
            ClusterTransactionalClient(transactionalId: "tx-\($0)", v2: rng.chance(options.transactionsV2Share))
        }
        self.rng = rng
    }

    /// Runs the seed and returns every anomaly found; empty means every invariant held.
    func run() throws -> [String] {
        world.createTopic(Self.topic, partitions: options.partitions)
        for node in 1...options.brokers { world.start(node) }
        world.pass(ms: 3 * ClusterWorld.heartbeatIntervalMs)
        for _ in 0..<options.steps { try step() }
        try finish()
        return anomalies
    }

    func note(_ line: String) { trace.append("[\(world.clock.now)] \(line)") }

    private func step() throws {
        // Faults recover after a few steps, so every run ends with the cluster whole.
        for (node, left) in down {
            if left > 1 { down[node] = left - 1; continue }
            down[node] = nil
            if world.pausesWhenServing == node { world.pausesWhenServing = nil }
            if world.nodes[node]?.paused == true {
                note("wake \(node)")
                world.wake(node)
            } else if world.nodes[node]?.alive != true {
                note("start \(node)")
                // The database may be away: it is tried again at the next step.
                if !world.start(node) { down[node] = 1 }
            }
        }
        if rng.chance(options.faultChance) { fault() }
        switch Int.random(in: 0..<10, using: &rng) {
        case 0..<3: produceStep(Int.random(in: 0..<producers.count, using: &rng))
        case 3..<6 where !transactional.isEmpty: transactionalStep(Int.random(in: 0..<transactional.count, using: &rng))
        case 6..<9: readStep()
        default: world.pass(ms: Int64.random(in: 100...3_000, using: &rng))
        }
    }

    private func fault() {
        let candidates = world.liveNodes.filter { down[$0] == nil }
        guard candidates.count > 1, let node = candidates.randomElement(using: &rng) else { return }
        switch Int.random(in: 0..<7, using: &rng) {
        case 0:
            note("kill \(node)")
            world.kill(node)
            down[node] = Int.random(in: 1...6, using: &rng)
        case 1:
            // Past its session: the others take its leases, then it wakes with its queue.
            note("pause \(node)")
            world.pause(node)
            down[node] = Int.random(in: 1...6, using: &rng)
            world.pass(ms: ClusterWorld.sessionTimeoutMs + Int64.random(in: 0...4_000, using: &rng))
        case 5:
            note("pause \(node) while it serves")
            world.pausesWhenServing = node
            down[node] = Int.random(in: 2...6, using: &rng)
        case 2:
            note("leave \(node)")
            world.leave(node)
            down[node] = Int.random(in: 1...6, using: &rng)
        case 3:
            note("database unreachable")
            world.database.unreachableUntil = world.clock.now + Int64.random(in: 500...8_000, using: &rng)
        default:
            note("lose the next commit answer of \(node)")
            world.database.losesAppendAnswers[node, default: 0] += 1
        }
    }

    // MARK: Metadata

    private func refreshMetadata() {
        var t = MetadataRequest.MetadataRequestTopic()
        t.name = Self.topic
        var req = MetadataRequest()
        req.topics = [t]
        req.allowAutoTopicCreation = false
        for node in (1...options.brokers).shuffled(using: &rng) {
            guard let r = world.request(req, version: 9, to: node, from: "client", as: MetadataResponse.self),
                let topic = r.topics.first, topic.errorCode == 0
            else { continue }
            for p in topic.partitions where p.errorCode == 0 && p.leaderId >= 0 {
                if let known = leaders[p.partitionIndex], known.epoch != p.leaderEpoch { leaderChanges += 1 }
                leaders[p.partitionIndex] = (p.leaderId, p.leaderEpoch)
            }
            return
        }
    }

    func leaderOf(_ partition: Int32) -> (node: Int32, epoch: Int32)? {
        if leaders[partition] == nil { refreshMetadata() }
        return leaders[partition]
    }

    // MARK: The idempotent producer

    private func produceStep(_ index: Int) {
        var producer = producers[index]
        defer { producers[index] = producer }
        if producer.producerId < 0 {
            var req = InitProducerIdRequest()
            req.transactionalId = nil
            req.transactionTimeoutMs = 60_000
            req.producerId = -1
            req.producerEpoch = -1
            guard let node = world.liveNodes.randomElement(using: &rng),
                let r = world.request(req, version: 4, to: node, from: "producer-\(index)", as: InitProducerIdResponse.self),
                r.errorCode == 0
            else { return }
            producer.producerId = r.producerId
            producer.epoch = r.producerEpoch
            return
        }
        if producer.pending == nil {
            producer.serial += 1
            let partition = Int32.random(in: 0..<options.partitions, using: &rng)
            let values = (0..<Int.random(in: 1...3, using: &rng)).map { "p\(index)/\(producer.serial)/\($0)" }
            producer.pending = (partition, values)
            for value in values {
                events.append(.recordSent(
                    record: value, transaction: nil, topic: Self.topic, partition: partition, key: nil, value: value, source: nil))
            }
        }
        let (partition, values) = producer.pending!
        guard let leader = leaderOf(partition) else { return }
        let sequence = producer.sequences[partition, default: 0]
        let batch = RecordBatch.encode(
            records: values.enumerated().map { Record(offsetDelta: Int32($0.offset), key: nil, value: Array($0.element.utf8)) },
            baseTimestamp: world.clock.now, producerId: producer.producerId, producerEpoch: producer.epoch,
            baseSequence: sequence)
        let request = Self.produceRequest(partition: partition, batch: batch)
        guard let r = world.request(request, version: 9, to: leader.node, from: "producer-\(index)", as: ProduceResponse.self) else {
            // No answer: the client looks the leader up again and retries the same sequence.
            leaders[partition] = nil
            return
        }
        let answer = r.responses[0].partitionResponses[0]
        switch ErrorCode(answer.errorCode) {
        case .none:
            for (i, value) in values.enumerated() {
                events.append(.recordAcknowledged(record: value, offset: answer.baseOffset + Int64(i)))
                acked[value] = answer.baseOffset + Int64(i)
            }
            producer.sequences[partition] = sequence + Int32(values.count)
            producer.pending = nil
        case .notLeaderOrFollower, .fencedLeaderEpoch, .unknownLeaderEpoch, .requestTimedOut, .notEnoughReplicas,
            .kafkaStorageError, .unknownServerError:
            leaders[partition] = nil
        case .outOfOrderSequenceNumber, .unknownProducerId, .invalidProducerEpoch:
            // Its state is gone from the leader: a new producer id, as librdkafka does; the
            // batch's values stay unacknowledged.
            note("producer \(producer.producerId) reset after \(ErrorCode(answer.errorCode)) on \(partition) at \(sequence)")
            producer = IdempotentClient(serial: producer.serial)
        default:
            leaders[partition] = nil
        }
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

    // MARK: The read_committed reader

    private func readStep() {
        let partition = Int32.random(in: 0..<options.partitions, using: &rng)
        let from = positions[partition, default: 0]
        guard let page = fetch(partition, from: from) else { return }
        if readerStarted.insert(partition).inserted {
            events.append(.readerStarted(reader: "reader", topic: Self.topic, partition: partition, position: from))
        }
        for record in page.records {
            events.append(.recordRead(reader: "reader", topic: Self.topic, partition: partition, offset: record.offset, record: record.value))
        }
        positions[partition] = page.next
    }

    private func fetch(_ partition: Int32, from: Int64)
        -> (records: [(offset: Int64, value: String)], next: Int64, end: Int64, highWatermark: Int64)?
    {
        guard let leader = leaderOf(partition) else { return nil }
        var p = FetchRequest.FetchPartition()
        p.partition = partition
        p.fetchOffset = from
        p.currentLeaderEpoch = leader.epoch
        p.partitionMaxBytes = 1 << 20
        var t = FetchRequest.FetchTopic()
        t.topic = Self.topic
        t.partitions = [p]
        var req = FetchRequest()
        req.maxWaitMs = 0
        req.minBytes = 0
        req.maxBytes = 1 << 20
        req.isolationLevel = 1
        req.topics = [t]
        guard let r = world.request(req, version: 12, to: leader.node, from: "reader", as: FetchResponse.self) else {
            note("fetch \(partition) at \(from) from \(leader.node): no answer")
            leaders[partition] = nil
            return nil
        }
        let data = r.responses[0].partitions[0]
        guard data.errorCode == 0 else {
            note("fetch \(partition) at \(from) from \(leader.node) epoch \(leader.epoch): \(ErrorCode(data.errorCode))")
            leaders[partition] = nil
            return nil
        }
        // As a consumer does: a producer's records are dropped from its aborted transaction's
        // first offset up to its next control batch.
        var aborted = (data.abortedTransactions ?? []).sorted { $0.firstOffset < $1.firstOffset }
        var aborting = Set<Int64>()
        var records: [(offset: Int64, value: String)] = []
        var next = from
        guard let batches = try? RecordBatch.decodeAll(from: data.records ?? ByteBuffer()) else {
            anomalies.append("fetch of \(partition) at \(from) returned batches that do not decode")
            return nil
        }
        for batch in batches {
            next = batch.header.nextOffset
            while let first = aborted.first, first.firstOffset <= batch.header.lastOffset {
                aborting.insert(first.producerId)
                aborted.removeFirst()
            }
            if batch.header.isControl {
                aborting.remove(batch.header.producerId)
                continue
            }
            if batch.header.isTransactional && aborting.contains(batch.header.producerId) { continue }
            for record in batch.records where batch.offset(of: record) >= from {
                records.append((batch.offset(of: record), String(decoding: record.value ?? [], as: UTF8.self)))
            }
        }
        return (records, next, data.lastStableOffset, data.highWatermark)
    }

    // MARK: The end

    private func finish() throws {
        down.removeAll()
        world.database.unreachableUntil = .min
        for node in 1...options.brokers {
            if world.pausesWhenServing == node { world.pausesWhenServing = nil }
            if world.nodes[node]?.paused == true { world.wake(node) }
            if world.nodes[node]?.alive != true { world.start(node) }
        }
        // Enough for every lease to settle, every queued round to commit or be fenced, and the
        // coordinators' timeouts to abort what the clients left open.
        world.pass(ms: 3 * ClusterWorld.sessionTimeoutMs + Self.transactionTimeoutMs)
        abandonOpenTransactions()
        checkTransactionsComplete()
        checkLeadershipViews()
        leaders.removeAll()
        for partition in 0..<options.partitions {
            var from = positions[partition, default: 0]
            var attempts = 0
            while attempts < 20 {
                attempts += 1
                guard let page = fetch(partition, from: from) else {
                    world.pass(ms: ClusterWorld.heartbeatIntervalMs)
                    continue
                }
                if readerStarted.insert(partition).inserted {
                    events.append(.readerStarted(reader: "reader", topic: Self.topic, partition: partition, position: from))
                }
                for record in page.records {
                    events.append(.recordRead(reader: "reader", topic: Self.topic, partition: partition, offset: record.offset, record: record.value))
                }
                if page.next <= from && from >= page.end {
                    if page.end < page.highWatermark {
                        anomalies.append("partition \(partition): LSO \(page.end) stays below the high watermark \(page.highWatermark) after every transaction ended; \(openTransactions(partition))")
                    }
                    events.append(.readerReachedEnd(reader: "reader", topic: Self.topic, partition: partition, position: from))
                    break
                }
                from = page.next
            }
            if attempts >= 20 { anomalies.append("partition \(partition) could not be read to its end after the faults stopped") }
        }
        let report = HistoryChecker.check(events)
        for (kind, examples) in report.anomalies.sorted(by: { $0.key.rawValue < $1.key.rawValue }) where !examples.isEmpty {
            anomalies.append("\(kind.rawValue): \(examples.prefix(3).joined(separator: "; "))")
        }
        try checkDatabase()
        clientAnomalies = anomalies
        anomalies += world.database.violations
    }

    /// Every broker stepped down where its lease moved (a woken ex-leader among them): once the
    /// cluster settled, a broker names itself leader of a partition only at the lease's epoch.
    private func checkLeadershipViews() {
        for node in world.liveNodes {
            guard let cluster = world.nodes[node]?.cluster else { continue }
            for (key, lease) in world.database.leases.sorted(by: { $0.key < $1.key }) {
                guard let leader = cluster.leader(of: key), leader.nodeId == node else { continue }
                if lease.holder != node || lease.epoch != leader.epoch {
                    anomalies.append("broker \(node) names itself leader of \(key) at epoch \(leader.epoch) while broker \(lease.holder) holds epoch \(lease.epoch)")
                }
            }
        }
    }

    /// What the database holds against what was acknowledged: each acknowledged record committed
    /// once, at the offset its producer was told, and no record committed twice.
    private func checkDatabase() throws {
        var stored: [String: Int64] = [:]
        for partition in 0..<options.partitions {
            for batch in try world.database.committedBatches(TopicPartitionKey(Self.topic, partition)) where !batch.header.isControl {
                for record in batch.records {
                    let value = String(decoding: record.value ?? [], as: UTF8.self)
                    if stored[value] != nil { anomalies.append("\(value) committed twice") }
                    stored[value] = batch.offset(of: record)
                }
            }
        }
        for (value, offset) in acked.sorted(by: { $0.key < $1.key }) {
            guard let at = stored[value] else {
                anomalies.append("acknowledged \(value) at \(offset) is not in the database")
                continue
            }
            if at != offset { anomalies.append("acknowledged \(value) at \(offset), committed at \(at)") }
        }
    }

    var acknowledged: Int { acked.count }

    /// The open transactions the partition's leader holds, and what the coordinator says of them.
    private func openTransactions(_ partition: Int32) -> String {
        let key = TopicPartitionKey(Self.topic, partition)
        guard let holder = world.database.leases[key]?.holder, let broker = world.nodes[holder]?.broker,
            let producers = broker.producers.loaded().first(where: { $0.key == key })?.producers
        else { return "no leader" }
        let coordinators = world.liveNodes.compactMap { world.nodes[$0]?.broker }.filter { $0.transactions.load.serving }
        let stateKey = TopicPartitionKey(InternalTopics.transactionState, 0)
        let stateHolder = world.database.leases[stateKey]
        let phase = stateHolder.flatMap { world.nodes[$0.holder]?.broker?.transactions.load.current }
        let coordinator = "transaction state led by \(stateHolder.map { "\($0.holder) epoch \($0.epoch) live \(world.database.leaseLive(stateKey))" } ?? "nobody") (\(phase.map { "\($0)" } ?? "-")); "
        let stored = ((try? world.database.committedBatches(stateKey)) ?? []).flatMap { batch in
            batch.records.compactMap { record -> String? in
                guard let key = record.key, let value = record.value, let txn = try? TransactionMetadata(decoding: value) else { return nil }
                return "\(batch.offset(of: record)):\(String(decoding: key, as: UTF8.self)) \(txn.state.name) \(txn.producerId)/\(txn.producerEpoch) \(txn.partitions.map(\.description))"
            }
        }
        return coordinator + "stored transaction log \(stored); " + "leader \(holder): " + producers.table.openTransactionsByProducer.map { open in
            let live = coordinators.map { "\($0.transactions.isLive(producerId: open.producerId, partition: key))" }
            let txns = coordinators.flatMap { $0.transactions.transactions }.filter { $0.producerId == open.producerId || $0.lastProducerId == open.producerId }
            return "producer \(open.producerId) epoch \(open.epoch) from \(open.firstOffset) live \(live) coordinator txns \(txns.map { "\($0.transactionalId) \($0.state.name) \($0.producerEpoch) \($0.partitions.map(\.description))" })"
        }.joined(separator: ", ")
    }

    var summary: String {
        "crashes \(world.crashes), pauses \(world.pauses), departures \(world.handOffs), takeovers \(world.database.leaseTakeovers), lost answers \(world.database.lostAnswers), leader changes seen \(leaderChanges), acknowledged \(acked.count); between brokers: \(world.network.counts)"
    }
}
