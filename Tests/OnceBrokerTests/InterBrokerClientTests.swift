import KafkaProtocol
import NIOCore
import NIOPosix
@testable import OnceBroker
import OnceCore
import Synchronization
import Testing

@Suite("Inter-broker client: framing, correlation, timeouts and reconnects")
struct InterBrokerClientTests {
    @Test("A request frame carries its size, the flexible header and ids that grow from 1")
    func framing() throws {
        var frames = InterBrokerFrames(clientId: "once-broker-2")
        let request = Self.markers(producerId: 7)
        var first = frames.encode(request, version: 1, allocator: ByteBufferAllocator())
        let second = frames.encode(request, version: 1, allocator: ByteBufferAllocator())
        #expect(first.correlationId == 1)
        #expect(second.correlationId == 2)
        let size = first.frame.readInteger(endianness: .big, as: Int32.self)
        #expect(size.map(Int.init) == first.frame.readableBytes)
        let header = try RequestHeader(from: &first.frame, version: 2)
        #expect(header.requestApiKey == WriteTxnMarkersRequest.apiKey)
        #expect(header.requestApiVersion == 1)
        #expect(header.correlationId == 1)
        #expect(header.clientId == "once-broker-2")
        #expect(try WriteTxnMarkersRequest(from: &first.frame, version: 1) == request)
        #expect(first.frame.readableBytes == 0)
    }

    @Test("Correlation ids wrap from Int32.max to 1")
    func wrap() {
        var frames = InterBrokerFrames(clientId: "b", lastCorrelationId: Int32.max - 1)
        #expect(frames.encode(ApiVersionsRequest(), version: 3, allocator: ByteBufferAllocator()).correlationId == Int32.max)
        #expect(frames.encode(ApiVersionsRequest(), version: 3, allocator: ByteBufferAllocator()).correlationId == 1)
    }

    @Test("Answers match only the oldest outstanding request")
    func inFlightOrder() {
        var inFlight = InterBrokerInFlight<String>()
        inFlight.register(1, "a")
        inFlight.register(2, "b")
        guard case .outOfStep(let expected) = inFlight.complete(2) else {
            Issue.record("an answer to the second request was matched before the first")
            return
        }
        #expect(expected == 1)
        guard case .matched(let a) = inFlight.complete(1), case .matched(let b) = inFlight.complete(2) else {
            Issue.record("in-order answers did not match")
            return
        }
        #expect([a, b] == ["a", "b"])
        #expect(inFlight.isEmpty)
        guard case .outOfStep(nil) = inFlight.complete(3) else {
            Issue.record("an id never sent was matched")
            return
        }
        inFlight.register(4, "d")
        #expect(inFlight.removeAll() == ["d"])
    }

    @Test("Reconnect backoff doubles per failure up to its cap")
    func backoff() {
        let settings = InterBrokerClient.Settings(
            listenerName: "PLAINTEXT", clientId: "b", reconnectBackoff: .milliseconds(50),
            reconnectBackoffMax: .seconds(1))
        #expect(InterBrokerClient.backoff(failures: 1, settings: settings) == .milliseconds(50))
        #expect(InterBrokerClient.backoff(failures: 2, settings: settings) == .milliseconds(100))
        #expect(InterBrokerClient.backoff(failures: 5, settings: settings) == .milliseconds(800))
        #expect(InterBrokerClient.backoff(failures: 6, settings: settings) == .seconds(1))
        #expect(InterBrokerClient.backoff(failures: 500, settings: settings) == .seconds(1))
    }

    @Test("Pipelined requests to a peer each get their own answer, over the member's listener")
    func roundTrips() async throws {
        let peer = try await FakePeer.start(.answer)
        let client = Self.client(peer)
        defer { client.shutdown() }
        async let a = client.send(Self.markers(producerId: 11), version: 1, to: 2)
        async let b = client.send(Self.markers(producerId: 12), version: 1, to: 2)
        let (ra, rb) = try await (a, b)
        #expect(ra.markers.map(\.producerId) == [11])
        #expect(rb.markers.map(\.producerId) == [12])
        #expect(ra.markers.first?.topics.first?.partitions.first?.errorCode == ErrorCode.notLeaderOrFollower.rawValue)
        #expect(peer.connections == 1)
        try await peer.stop()
    }

    @Test("An answer with the wrong correlation id fails the request and the next one reconnects")
    func outOfStep() async throws {
        let peer = try await FakePeer.start(.wrongIdOnce)
        let client = Self.client(peer)
        defer { client.shutdown() }
        await #expect { try await client.send(Self.markers(producerId: 1), version: 1, to: 2) } throws: {
            ($0 as? InterBrokerError)?.kind == .outOfStep
        }
        let answer = try await client.send(Self.markers(producerId: 2), version: 1, to: 2)
        #expect(answer.markers.map(\.producerId) == [2])
        #expect(peer.connections == 2)
        try await peer.stop()
    }

    @Test("A request on a connection already closed fails instead of waiting forever")
    func sendAfterClose() async throws {
        let peer = try await FakePeer.start(.answer)
        let connection = try await InterBrokerConnection.connect(
            host: "127.0.0.1", port: peer.address.port, clientId: "b", requestTimeout: .seconds(30),
            maxFrameSize: 1 << 20, group: MultiThreadedEventLoopGroup.singleton)
        try await connection.close().get()
        await #expect { try await connection.send(Self.markers(producerId: 1), version: 1) } throws: {
            ($0 as? InterBrokerError)?.kind == .closed
        }
        try await peer.stop()
    }

    @Test("A peer that never answers fails the request with a timeout")
    func timeout() async throws {
        let peer = try await FakePeer.start(.silent)
        var settings = Self.settings
        settings.requestTimeout = .milliseconds(200)
        let client = InterBrokerClient(
            settings: settings, cluster: FixedCluster(peer: peer.address), group: MultiThreadedEventLoopGroup.singleton)
        defer { client.shutdown() }
        await #expect { try await client.send(Self.markers(producerId: 1), version: 1, to: 2) } throws: {
            ($0 as? InterBrokerError)?.kind == .timedOut
        }
        try await peer.stop()
    }

    @Test("A refused connect backs off, and a node that is not live or lacks the listener has no endpoint")
    func refusedAndUnknown() async throws {
        let peer = try await FakePeer.start(.answer)
        let address = peer.address
        try await peer.stop()
        var settings = Self.settings
        settings.reconnectBackoff = .seconds(60)
        settings.reconnectBackoffMax = .seconds(60)
        let client = InterBrokerClient(
            settings: settings, cluster: FixedCluster(peer: address), group: MultiThreadedEventLoopGroup.singleton)
        await #expect { try await client.send(Self.markers(producerId: 1), version: 1, to: 2) } throws: {
            ($0 as? InterBrokerError)?.kind == .connectFailed
        }
        await #expect { try await client.send(Self.markers(producerId: 1), version: 1, to: 2) } throws: {
            ($0 as? InterBrokerError)?.kind == .backingOff
        }
        await #expect { try await client.send(Self.markers(producerId: 1), version: 1, to: 3) } throws: {
            ($0 as? InterBrokerError)?.kind == .noEndpoint
        }
        var other = Self.settings
        other.listenerName = "INTERNAL"
        let wrongListener = InterBrokerClient(
            settings: other, cluster: FixedCluster(peer: address), group: MultiThreadedEventLoopGroup.singleton)
        await #expect { try await wrongListener.send(Self.markers(producerId: 1), version: 1, to: 2) } throws: {
            ($0 as? InterBrokerError)?.kind == .noEndpoint
        }
    }

    static let settings = InterBrokerClient.Settings(listenerName: "PLAINTEXT", clientId: "once-broker-1")

    static func client(_ peer: FakePeer) -> InterBrokerClient {
        InterBrokerClient(settings: settings, cluster: FixedCluster(peer: peer.address), group: MultiThreadedEventLoopGroup.singleton)
    }

    static func markers(producerId: Int64) -> WriteTxnMarkersRequest {
        var topic = WriteTxnMarkersRequest.WritableTxnMarkerTopic()
        topic.name = "orders"
        topic.partitionIndexes = [0, 3]
        var marker = WriteTxnMarkersRequest.WritableTxnMarker()
        marker.producerId = producerId
        marker.producerEpoch = 4
        marker.transactionResult = true
        marker.topics = [topic]
        var request = WriteTxnMarkersRequest()
        request.markers = [marker]
        return request
    }
}

/// Node 1 is this broker; node 2 is the fake peer, reachable on its PLAINTEXT listener only.
private final class FixedCluster: ClusterView {
    let nodeId: Int32 = 1
    let peer: HostPort

    init(peer: HostPort) { self.peer = peer }

    func liveMembers() -> [ClusterMember] {
        [ClusterMember(nodeId: 1, endpoints: ["PLAINTEXT": HostPort(host: "127.0.0.1", port: 1)]),
         ClusterMember(nodeId: 2, endpoints: ["PLAINTEXT": peer])]
    }

    func leader(of partition: TopicPartitionKey) -> PartitionLeader? { nil }
    func addLeadershipListener(_ listener: any LeadershipListener) {}
}

/// A broker on loopback that answers WriteTxnMarkers the way a peer that no longer leads would,
/// or misbehaves as told.
final class FakePeer: Sendable {
    enum Mode: Sendable { case answer, wrongIdOnce, silent }

    private let channel: any Channel
    private let counter: Counter
    private let partitions: Counter
    var connections: Int { counter.count }
    /// How many partitions the peer was sent markers for.
    var partitionsSent: Int { partitions.count }
    var address: HostPort { HostPort(host: "127.0.0.1", port: channel.localAddress!.port!) }

    private init(channel: any Channel, counter: Counter, partitions: Counter) {
        self.channel = channel
        self.counter = counter
        self.partitions = partitions
    }

    static func start(_ mode: Mode) async throws -> FakePeer {
        let counter = Counter()
        let partitions = Counter()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { child in
                let connection = counter.next()
                return child.eventLoop.makeCompletedFuture {
                    try child.pipeline.syncOperations.addHandler(
                        ByteToMessageHandler(KafkaFrameDecoder(maxFrameSize: 1 << 20)))
                    try child.pipeline.syncOperations.addHandler(
                        Answerer(wrongId: mode == .wrongIdOnce && connection == 1, silent: mode == .silent, partitions: partitions))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return FakePeer(channel: channel, counter: counter, partitions: partitions)
    }

    func stop() async throws {
        try await channel.close()
    }

    private final class Counter: Sendable {
        private let state = Mutex(0)
        var count: Int { state.withLock { $0 } }
        func next() -> Int { state.withLock { $0 += 1; return $0 } }
    }

    private final class Answerer: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        let wrongId: Bool
        let silent: Bool
        let partitions: Counter

        init(wrongId: Bool, silent: Bool, partitions: Counter) {
            self.wrongId = wrongId
            self.silent = silent
            self.partitions = partitions
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !silent else { return }
            var frame = unwrapInboundIn(data)
            guard let header = try? RequestHeader(from: &frame, version: 2),
                let request = try? WriteTxnMarkersRequest(from: &frame, version: header.requestApiVersion)
            else {
                context.close(promise: nil)
                return
            }
            var response = WriteTxnMarkersResponse()
            response.markers = request.markers.map { marker in
                var result = WriteTxnMarkersResponse.WritableTxnMarkerResult()
                result.producerId = marker.producerId
                result.topics = marker.topics.map { t in
                    var topic = WriteTxnMarkersResponse.WritableTxnMarkerTopicResult()
                    topic.name = t.name
                    topic.partitions = t.partitionIndexes.map { p in
                        var partition = WriteTxnMarkersResponse.WritableTxnMarkerPartitionResult()
                        partition.partitionIndex = p
                        partition.errorCode = ErrorCode.notLeaderOrFollower.rawValue
                        _ = self.partitions.next()
                        return partition
                    }
                    return topic
                }
                return result
            }
            var out = context.channel.allocator.buffer(capacity: 128)
            out.writeInteger(Int32(0), endianness: .big)
            var responseHeader = ResponseHeader()
            responseHeader.correlationId = wrongId ? header.correlationId + 100 : header.correlationId
            responseHeader.encode(
                into: &out,
                version: KafkaHeaderVersions.response(apiKey: header.requestApiKey, apiVersion: header.requestApiVersion))
            response.encode(into: &out, version: header.requestApiVersion)
            out.setInteger(Int32(out.readableBytes - 4), at: 0, endianness: .big)
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
    }
}
