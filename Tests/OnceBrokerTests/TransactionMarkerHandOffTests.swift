import KafkaProtocol
import Logging
import NIOCore
import NIOPosix
@testable import OnceBroker
import OnceCore
import OnceStorage
import Synchronization
import Testing

@Suite("EndTxn is answered after the prepare record; markers for partitions led elsewhere follow the answer")
struct TransactionMarkerHandOffTests {
    static let local = TopicPartitionKey("orders", 0)
    static let remote = TopicPartitionKey("orders", 1)

    @Test("EndTxn returns while the other leader holds its WriteTxnMarkers answer; the transaction completes once it answers")
    func endTxnBeforeRemoteMarkers() async throws {
        let peer = try await HoldingPeer.start()
        let fixture = try Fixture(peer: peer)
        defer { fixture.client.shutdown() }
        let service = fixture.service
        let producer = try await service.initProducerId(
            transactionalId: "t", timeoutMs: 60_000, expectedProducerId: -1, expectedProducerEpoch: -1, now: Fixture.now())
        let (id, epoch) = (producer.producerId, producer.producerEpoch)
        #expect(try await service.addPartitions(
            transactionalId: "t", producerId: id, producerEpoch: epoch, partitions: [Self.local, Self.remote], now: Fixture.now()) == nil)
        let localLog = try #require(fixture.storage.partition(topic: Self.local.topic, partition: Self.local.partition))
        let before = localLog.logEndOffset

        let answer = Mutex<TransactionCoordinator.Outcome?>(nil)
        let ending = Task {
            let outcome = try await service.endTransaction(
                transactionalId: "t", producerId: id, producerEpoch: epoch, commit: true, transactionVersion: 0, now: Fixture.now())
            answer.withLock { $0 = outcome }
        }
        guard try await Fixture.waitUntil("EndTxn is answered while the other leader holds its answer", { answer.withLock { $0 } != nil })
        else {
            peer.release()
            _ = await ending.result
            return
        }
        #expect(answer.withLock { $0?.failure } == nil)
        // Answered with the other leader's marker outstanding: the marker this broker writes
        // itself is in its log and durable (`always`), the transaction is still prepared.
        #expect(localLog.logEndOffset == before + 1)
        #expect(localLog.highWatermark == before + 1)
        #expect(fixture.state("t") == .prepareCommit)
        #expect(peer.answered == 0)

        // Meanwhile the producer's next transaction, and a retry of the same EndTxn, wait.
        #expect(try await service.addPartitions(
            transactionalId: "t", producerId: id, producerEpoch: epoch, partitions: [Self.local], now: Fixture.now())
            == .concurrentTransactions)
        let retried = try await service.endTransaction(
            transactionalId: "t", producerId: id, producerEpoch: epoch, commit: true, transactionVersion: 0, now: Fixture.now())
        #expect(retried.failure == .concurrentTransactions)

        // The hand-off sends at once, not after a backoff: the request is at the peer, held.
        try await Fixture.waitUntil("the WriteTxnMarkers request reaches the other leader") { peer.held == 1 }
        #expect(fixture.state("t") == .prepareCommit)
        peer.release()
        try await Fixture.waitUntil("the transaction completes once the other leader answers") {
            fixture.state("t") == .completeCommit
        }
        #expect(peer.partitionsReceived == [Self.remote])
        #expect(peer.answered == 1)
        #expect(try await service.addPartitions(
            transactionalId: "t", producerId: id, producerEpoch: epoch, partitions: [Self.local], now: Fixture.now()) == nil)
        try await peer.stop()
    }

    @Test("Transactions V2: EndTxn v5 is answered with the bumped epoch while the other leader holds its answer; its retry waits")
    func transactionsV2() async throws {
        let peer = try await HoldingPeer.start()
        let fixture = try Fixture(peer: peer)
        defer { fixture.client.shutdown() }
        let service = fixture.service
        let producer = try await service.initProducerId(
            transactionalId: "v2", timeoutMs: 60_000, expectedProducerId: -1, expectedProducerEpoch: -1, now: Fixture.now())
        let (id, epoch) = (producer.producerId, producer.producerEpoch)
        #expect(try await service.addPartitions(
            transactionalId: "v2", producerId: id, producerEpoch: epoch, partitions: [Self.remote], transactionVersion: 2,
            now: Fixture.now()) == nil)
        let answer = Mutex<TransactionCoordinator.Outcome?>(nil)
        let ending = Task {
            let outcome = try await service.endTransaction(
                transactionalId: "v2", producerId: id, producerEpoch: epoch, commit: true, transactionVersion: 2, now: Fixture.now())
            answer.withLock { $0 = outcome }
        }
        guard try await Fixture.waitUntil("EndTxn v5 is answered while the other leader holds its answer", { answer.withLock { $0 } != nil })
        else {
            peer.release()
            _ = await ending.result
            return
        }
        let outcome = try #require(answer.withLock { $0 })
        #expect(outcome.failure == nil)
        #expect(outcome.producerId == id && outcome.producerEpoch == epoch + 1)
        #expect(fixture.state("v2") == .prepareCommit)
        // KIP-890's retry (the epoch before the bump) of a transaction still prepared.
        let retried = try await service.endTransaction(
            transactionalId: "v2", producerId: id, producerEpoch: epoch, commit: true, transactionVersion: 2, now: Fixture.now())
        #expect(retried.failure == .concurrentTransactions)
        try await Fixture.waitUntil("the WriteTxnMarkers request reaches the other leader") { peer.held == 1 }
        peer.release()
        try await Fixture.waitUntil("the transaction completes once the other leader answers") {
            fixture.state("v2") == .completeCommit
        }
        try await peer.stop()
    }

    @Test("A transaction whose partitions this broker leads completes before EndTxn is answered, sending nothing")
    func localOnlyCompletesBeforeAnswer() async throws {
        let peer = try await HoldingPeer.start()
        let fixture = try Fixture(peer: peer)
        defer { fixture.client.shutdown() }
        let service = fixture.service
        let producer = try await service.initProducerId(
            transactionalId: "solo", timeoutMs: 60_000, expectedProducerId: -1, expectedProducerEpoch: -1, now: Fixture.now())
        #expect(try await service.addPartitions(
            transactionalId: "solo", producerId: producer.producerId, producerEpoch: producer.producerEpoch,
            partitions: [Self.local], now: Fixture.now()) == nil)
        let ended = try await service.endTransaction(
            transactionalId: "solo", producerId: producer.producerId, producerEpoch: producer.producerEpoch, commit: false,
            transactionVersion: 0, now: Fixture.now())
        #expect(ended.failure == nil)
        #expect(fixture.state("solo") == .completeAbort)
        #expect(peer.held == 0)
        try await peer.stop()
    }

    /// One coordinating broker (node 1) over memory storage under `always`, with node 2, the
    /// holding peer, leading `remote`.
    struct Fixture {
        let storage = MemoryLogStorage(flushPolicy: .always)
        let client: InterBrokerClient
        let peers: TransactionPeers
        let service: TransactionService

        init(peer: HoldingPeer) throws {
            let logger = Logger(label: "test")
            _ = try storage.createTopic(name: TransactionMarkerHandOffTests.local.topic, partitions: 2, configs: [:])
            let cluster = SplitCluster(peer: peer.address, ledByPeer: [TransactionMarkerHandOffTests.remote])
            // Longer than every wait of the test: a request given up would be an answer of sorts.
            var settings = InterBrokerClient.Settings(listenerName: "PLAINTEXT", clientId: "once-broker-1")
            settings.requestTimeout = .seconds(600)
            let client = InterBrokerClient(settings: settings, cluster: cluster, group: MultiThreadedEventLoopGroup.singleton)
            peers = TransactionPeers(transport: client, cluster: cluster, logger: logger)
            self.client = client
            service = try TransactionService(
                storage: storage, producers: try ProducerRegistry(storage: storage, logger: logger), waiters: FetchWaiters(),
                config: TransactionCoordinator.Config(), flushAlways: true, logger: logger, clock: { Clock.nowMilliseconds() },
                cluster: cluster, peers: peers, runtime: BrokerRuntime())
        }

        func state(_ id: String) -> TransactionState? {
            service.transactions.first { $0.transactionalId == id }?.state
        }

        static func now() -> Int64 { Clock.nowMilliseconds() }

        /// Polls with a generous deadline: the test asserts what happens, never how fast.
        @discardableResult
        static func waitUntil(_ what: String, _ condition: () -> Bool) async throws -> Bool {
            for _ in 0..<3000 {
                if condition() { return true }
                try await Task.sleep(for: .milliseconds(10))
            }
            Issue.record("timed out waiting: \(what)")
            return false
        }
    }
}

/// Node 1 is this broker and leads every partition but `ledByPeer`, which node 2 leads.
final class SplitCluster: ClusterView {
    let nodeId: Int32 = 1
    let peer: HostPort
    let ledByPeer: Set<TopicPartitionKey>

    init(peer: HostPort, ledByPeer: Set<TopicPartitionKey>) {
        self.peer = peer
        self.ledByPeer = ledByPeer
    }

    func liveMembers() -> [ClusterMember] {
        [ClusterMember(nodeId: 1, endpoints: ["PLAINTEXT": HostPort(host: "127.0.0.1", port: 1)]),
         ClusterMember(nodeId: 2, endpoints: ["PLAINTEXT": peer])]
    }

    func leader(of partition: TopicPartitionKey) -> PartitionLeader? {
        PartitionLeader(nodeId: ledByPeer.contains(partition) ? 2 : 1, epoch: 1)
    }

    func addLeadershipListener(_ listener: any LeadershipListener) {}
}

/// A partition leader that takes WriteTxnMarkers and answers each (every partition written) only
/// once told to: a leader that is slow, or paused.
final class HoldingPeer: Sendable {
    private let channel: any Channel
    private let state: Mutex<State>

    private struct State {
        var held: [(channel: any Channel, answer: ByteBuffer)] = []
        var partitions: [TopicPartitionKey] = []
        var answered = 0
        var released = false
    }

    var address: HostPort { HostPort(host: "127.0.0.1", port: channel.localAddress!.port!) }
    var held: Int { state.withLock { $0.held.count } }
    var answered: Int { state.withLock { $0.answered } }
    var partitionsReceived: [TopicPartitionKey] { state.withLock { $0.partitions } }

    private init(channel: any Channel) {
        self.channel = channel
        self.state = Mutex(State())
    }

    static func start() async throws -> HoldingPeer {
        let box = StateBox()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder(maxFrameSize: 1 << 20)))
                    try child.pipeline.syncOperations.addHandler(Receiver(box: box))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let peer = HoldingPeer(channel: channel)
        box.peer.withLock { $0 = peer }
        return peer
    }

    /// Answers every held request, and every later one at once.
    func release() {
        let held = state.withLock { s in
            s.released = true
            s.answered += s.held.count
            defer { s.held = [] }
            return s.held
        }
        for (channel, answer) in held { channel.writeAndFlush(answer, promise: nil) }
    }

    func stop() async throws {
        try await channel.close()
    }

    fileprivate func received(_ request: WriteTxnMarkersRequest, answer: ByteBuffer, on channel: any Channel) {
        let now = state.withLock { s in
            for marker in request.markers {
                for topic in marker.topics { s.partitions += topic.partitionIndexes.map { TopicPartitionKey(topic.name, $0) } }
            }
            if s.released {
                s.answered += 1
                return true
            }
            s.held.append((channel, answer))
            return false
        }
        if now { channel.writeAndFlush(answer, promise: nil) }
    }

    private final class StateBox: Sendable {
        let peer = Mutex<HoldingPeer?>(nil)
    }

    private final class Receiver: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let box: StateBox

        init(box: StateBox) { self.box = box }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var frame = unwrapInboundIn(data)
            guard let header = try? RequestHeader(from: &frame, version: 2),
                header.requestApiKey == WriteTxnMarkersRequest.apiKey,
                let request = try? WriteTxnMarkersRequest(from: &frame, version: header.requestApiVersion),
                let peer = box.peer.withLock({ $0 })
            else {
                context.close(promise: nil)
                return
            }
            let response = WriteTxnMarkersResponse.allWritten(request)
            var out = context.channel.allocator.buffer(capacity: 128)
            out.writeInteger(Int32(0), endianness: .big)
            var responseHeader = ResponseHeader()
            responseHeader.correlationId = header.correlationId
            responseHeader.encode(
                into: &out,
                version: KafkaHeaderVersions.response(apiKey: header.requestApiKey, apiVersion: header.requestApiVersion))
            response.encode(into: &out, version: header.requestApiVersion)
            out.setInteger(Int32(out.readableBytes - 4), at: 0, endianness: .big)
            peer.received(request, answer: out, on: context.channel)
        }
    }
}
