import KafkaProtocol
import NIOCore
import NIOPosix
import Testing

@testable import OnceClient

/// A broker stand-in on loopback that speaks just enough: ApiVersions up to v2 (answering newer
/// versions the way Kafka does, in v0 with UNSUPPORTED_VERSION) and Metadata up to v12.
private final class FakeBrokerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    static let ranges: [(Int16, ClosedRange<Int16>)] = [(18, 0...2), (3, 0...12)]

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        let apiKey = frame.getInteger(at: frame.readerIndex, endianness: .big, as: Int16.self)!
        let version = frame.getInteger(at: frame.readerIndex + 2, endianness: .big, as: Int16.self)!
        let header = try! RequestHeader(
            from: &frame, version: KafkaHeaderVersions.request(apiKey: apiKey, apiVersion: version))

        var out = context.channel.allocator.buffer(capacity: 128)
        out.writeInteger(Int32(0), endianness: .big)
        var responseHeader = ResponseHeader()
        responseHeader.correlationId = header.correlationId
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
            let answerVersion: Int16 = version > 2 ? 0 : version
            if version > 2 { response.errorCode = ErrorCode.unsupportedVersion.rawValue }
            responseHeader.encode(into: &out, version: 0)
            response.encode(into: &out, version: answerVersion)
        default:
            precondition(version == 12, "the client should have negotiated Metadata v12, sent v\(version)")
            var response = MetadataResponse()
            var broker = MetadataResponse.MetadataResponseBroker()
            broker.nodeId = 7
            broker.host = "fake"
            broker.port = 1234
            response.brokers = [broker]
            response.controllerId = 7
            var topic = MetadataResponse.MetadataResponseTopic()
            topic.name = "t"
            topic.topicId = KafkaUUID(high: 1, low: 2)
            var partition = MetadataResponse.MetadataResponsePartition()
            partition.partitionIndex = 0
            partition.leaderId = 7
            topic.partitions = [partition]
            response.topics = [topic]
            responseHeader.encode(into: &out, version: KafkaHeaderVersions.response(apiKey: apiKey, apiVersion: version))
            response.encode(into: &out, version: version)
        }
        out.setInteger(Int32(out.readableBytes - 4), at: out.readerIndex, endianness: .big)
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }
}

@Suite struct KafkaConnectionTests {
    private func withFakeBroker(_ body: (Int) async throws -> Void) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(KafkaFrameDecoder()))
                    try channel.pipeline.syncOperations.addHandler(FakeBrokerHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        do {
            try await body(server.localAddress!.port!)
        } catch {
            try? await server.close()
            throw error
        }
        try await server.close()
    }

    @Test func fallsBackToAnApiVersionsVersionTheBrokerKnows() async throws {
        try await withFakeBroker { port in
            let connection = try await KafkaConnection.connect(host: "127.0.0.1", port: port)
            #expect(connection.apiVersions.brokerRanges[18] == 0...2)
            #expect(connection.apiVersions.brokerRanges[3] == 0...12)
            #expect(try connection.version(for: MetadataRequest.self) == 12)
            await connection.close()
        }
    }

    @Test func sendsTypedRequestsAtTheNegotiatedVersion() async throws {
        try await withFakeBroker { port in
            let connection = try await KafkaConnection.connect(host: "127.0.0.1", port: port)
            async let first = connection.send(MetadataRequest())
            async let second = connection.send(MetadataRequest())
            let responses = try await [first, second]
            #expect(responses.map { $0.brokers.first?.nodeId } == [7, 7])
            #expect(responses[0].topics.first?.topicId == KafkaUUID(high: 1, low: 2))
            await connection.close()
        }
    }

    @Test func refusesAnApiTheBrokerDoesNotOffer() async throws {
        try await withFakeBroker { port in
            let connection = try await KafkaConnection.connect(host: "127.0.0.1", port: port)
            do {
                _ = try await connection.send(ProduceRequest())
                Issue.record("Produce is not offered by the fake broker")
            } catch let error as KafkaClientError {
                #expect(error.kind == .unsupportedApi)
            }
            await connection.close()
        }
    }

    @Test func aRefusedConnectionSaysSoInOneLine() async throws {
        // Bind and close a socket to find a port nothing listens on.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let port = probe.localAddress!.port!
        try await probe.close()
        do {
            _ = try await KafkaConnection.connect(host: "127.0.0.1", port: port)
            Issue.record("nothing listens on \(port)")
        } catch let error as KafkaClientError {
            #expect(error.kind == .cannotConnect)
            #expect(error.description == "cannot connect to 127.0.0.1:\(port): connection refused")
        }
    }

    @Test func theClientRoutesByTheMetadataItLearned() async throws {
        try await withFakeBroker { port in
            let client = try await KafkaClient.connect(bootstrapServers: [BootstrapServer(host: "127.0.0.1", port: port)])
            let metadata = try await client.metadata(topics: ["t"])
            #expect(metadata.topic("t")?.partitions.map(\.leader) == [7])
            #expect(await client.topicId("t") == KafkaUUID(high: 1, low: 2))
            let leaders = try await client.leaders(for: [TopicPartition("t", 0)])
            #expect(leaders == [7: [TopicPartition("t", 0)]])
            await client.close()
        }
    }
}
