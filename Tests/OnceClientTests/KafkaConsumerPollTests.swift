import KafkaProtocol
import NIOCore
import NIOPosix
import Synchronization
import Testing

@testable import OnceClient

/// A one-broker group coordinator on loopback whose JoinGroup answers follow a script, so the
/// consumer's recovery from group errors can be watched without a broker.
private final class FakeCoordinator: Sendable {
    /// Error codes for successive JoinGroup requests; once used up, joins succeed.
    let joinErrors: Mutex<[ErrorCode]>
    /// The member id of every JoinGroup received, in order.
    let joinMemberIds = Mutex<[String]>([])
    let port = Mutex<Int>(0)

    init(joinErrors: [ErrorCode]) { self.joinErrors = Mutex(joinErrors) }

    static let ranges: [(Int16, ClosedRange<Int16>)] = [
        (18, 0...2), (3, 0...12), (10, 0...3), (11, 0...5), (12, 0...3), (13, 0...3), (14, 0...3),
    ]

    func respond(apiKey: Int16, version: Int16, frame: inout ByteBuffer, out: inout ByteBuffer) throws {
        switch apiKey {
        case ApiVersionsRequest.apiKey:
            var response = ApiVersionsResponse()
            response.apiKeys = Self.ranges.map {
                var key = ApiVersionsResponse.ApiVersion()
                key.apiKey = $0.0
                key.minVersion = $0.1.lowerBound
                key.maxVersion = $0.1.upperBound
                return key
            }
            response.encode(into: &out, version: version)
        case MetadataRequest.apiKey:
            var response = MetadataResponse()
            var broker = MetadataResponse.MetadataResponseBroker()
            broker.nodeId = 1
            broker.host = "127.0.0.1"
            broker.port = Int32(port.withLock { $0 })
            response.brokers = [broker]
            response.controllerId = 1
            response.encode(into: &out, version: version)
        case FindCoordinatorRequest.apiKey:
            var response = FindCoordinatorResponse()
            response.nodeId = 1
            response.host = "127.0.0.1"
            response.port = Int32(port.withLock { $0 })
            response.encode(into: &out, version: version)
        case JoinGroupRequest.apiKey:
            let request = try JoinGroupRequest(from: &frame, version: version)
            joinMemberIds.withLock { $0.append(request.memberId) }
            var response = JoinGroupResponse()
            let error = joinErrors.withLock { $0.isEmpty ? nil : $0.removeFirst() }
            if let error {
                response.errorCode = error.rawValue
            } else {
                response.memberId = request.memberId.isEmpty ? "member-1" : request.memberId
                response.generationId = 1
                response.protocolName = "range"
                response.leader = "someone-else"
            }
            response.encode(into: &out, version: version)
        case SyncGroupRequest.apiKey:
            SyncGroupResponse().encode(into: &out, version: version)
        case HeartbeatRequest.apiKey:
            HeartbeatResponse().encode(into: &out, version: version)
        default:
            LeaveGroupResponse().encode(into: &out, version: version)
        }
    }
}

private final class FakeCoordinatorHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let coordinator: FakeCoordinator

    init(_ coordinator: FakeCoordinator) { self.coordinator = coordinator }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        let apiKey = frame.getInteger(at: frame.readerIndex, endianness: .big, as: Int16.self)!
        let version = frame.getInteger(at: frame.readerIndex + 2, endianness: .big, as: Int16.self)!
        let header = try! RequestHeader(from: &frame, version: KafkaHeaderVersions.request(apiKey: apiKey, apiVersion: version))
        var out = context.channel.allocator.buffer(capacity: 128)
        out.writeInteger(Int32(0), endianness: .big)
        var responseHeader = ResponseHeader()
        responseHeader.correlationId = header.correlationId
        // ApiVersions answers with header v0 whatever its version.
        let headerVersion = apiKey == ApiVersionsRequest.apiKey ? 0 : KafkaHeaderVersions.response(apiKey: apiKey, apiVersion: version)
        responseHeader.encode(into: &out, version: headerVersion)
        try! coordinator.respond(apiKey: apiKey, version: version, frame: &frame, out: &out)
        out.setInteger(Int32(out.readableBytes - 4), at: out.readerIndex, endianness: .big)
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }
}

@Suite struct KafkaConsumerPollTests {
    private func withConsumer(
        joinErrors: [ErrorCode] = [], _ body: (KafkaConsumer, FakeCoordinator) async throws -> Void
    ) async throws {
        let coordinator = FakeCoordinator(joinErrors: joinErrors)
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(FakeCoordinatorHandler(coordinator))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let port = server.localAddress!.port!
        coordinator.port.withLock { $0 = port }
        var configuration = ConsumerConfiguration(bootstrapServers: [BootstrapServer(host: "127.0.0.1", port: port)])
        configuration.groupId = "g"
        configuration.heartbeatInterval = .seconds(30)
        let consumer = try await KafkaConsumer.connect(configuration: configuration)
        do {
            try await body(consumer, coordinator)
        } catch {
            await consumer.close()
            try? await server.close()
            throw error
        }
        await consumer.close()
        try await server.close()
    }

    /// Polls until the member has joined (its `assigned` event), failing after `limit`.
    private func pollUntilJoined(_ consumer: KafkaConsumer, limit: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + limit
        while await consumer.groupMetadata.generationId < 1 {
            #expect(try await consumer.poll(timeout: .milliseconds(50)).isEmpty)
            try #require(ContinuousClock.now < deadline, "the consumer never joined")
        }
    }

    @Test func pollReturnsNothingOnTimeout() async throws {
        try await withConsumer { consumer, _ in
            try await consumer.assign([])
            let started = ContinuousClock.now
            let records = try await consumer.poll(timeout: .milliseconds(150))
            let elapsed = ContinuousClock.now - started
            #expect(records.isEmpty)
            #expect(elapsed >= .milliseconds(150))
            #expect(elapsed < .seconds(2))
        }
    }

    @Test func pollHonoursCancellation() async throws {
        try await withConsumer { consumer, _ in
            try await consumer.assign([])
            let poll = Task { try await consumer.poll(timeout: .seconds(60)) }
            try await Task.sleep(for: .milliseconds(100))
            let started = ContinuousClock.now
            poll.cancel()
            await #expect(throws: CancellationError.self) { try await poll.value }
            #expect(ContinuousClock.now - started < .seconds(2))
        }
    }

    @Test func pollOnAClosedConsumerSaysSo() async throws {
        try await withConsumer { consumer, _ in
            await consumer.close()
            await #expect(throws: KafkaClientError.self) { try await consumer.poll(timeout: .milliseconds(10)) }
        }
    }

    @Test func retriableGroupErrorsAreRetriedInsteadOfEndingTheConsumer() async throws {
        try await withConsumer(joinErrors: [.rebalanceInProgress, .coordinatorNotAvailable, .illegalGeneration]) {
            consumer, coordinator in
            try await consumer.subscribe(["t"])
            try await pollUntilJoined(consumer)
            #expect(await consumer.groupMetadata.memberId == "member-1")
            // Three failed JoinGroups and the one that worked; none had a member id to send yet.
            #expect(coordinator.joinMemberIds.withLock { $0 } == ["", "", "", ""])
        }
    }

    @Test func anUnknownMemberRejoinsWithAnEmptyMemberId() async throws {
        try await withConsumer { consumer, coordinator in
            try await consumer.subscribe(["t"])
            try await pollUntilJoined(consumer)
            // The coordinator forgets the member, as after a session timeout.
            coordinator.joinErrors.withLock { $0 = [.unknownMemberId] }
            await consumer.heartbeatFailed(KafkaError(.rebalanceInProgress), generation: 1)
            coordinator.joinMemberIds.withLock { $0 = [] }
            let deadline = ContinuousClock.now + .seconds(10)
            while coordinator.joinMemberIds.withLock({ $0.count }) < 2 {
                #expect(try await consumer.poll(timeout: .milliseconds(50)).isEmpty)
                try #require(ContinuousClock.now < deadline, "the consumer never rejoined")
            }
            #expect(coordinator.joinMemberIds.withLock { $0 } == ["member-1", ""])
        }
    }

    @Test func aNonRetriableGroupErrorEndsThePoll() async throws {
        try await withConsumer(joinErrors: [.groupAuthorizationFailed]) { consumer, _ in
            try await consumer.subscribe(["t"])
            let deadline = ContinuousClock.now + .seconds(10)
            await #expect(throws: KafkaError(.groupAuthorizationFailed)) {
                while ContinuousClock.now < deadline { _ = try await consumer.poll(timeout: .milliseconds(50)) }
            }
        }
    }
}
