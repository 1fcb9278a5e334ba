import NIOCore
import NIOPosix
import Testing

@testable import OnceClient

@Suite("TLS failures are typed client errors")
struct ClientTLSTests {
    /// A plaintext peer: it reads whatever arrives (a ClientHello) and hangs up, as a Kafka
    /// broker's plaintext listener does on a frame size it cannot accept.
    private final class HangUp: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.close(promise: nil)
        }
    }

    @Test("A TLS client on a plaintext port fails connect with .tlsFailed, not a closed connection later")
    func plaintextPeer() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(HangUp()) }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        var configuration = KafkaClientConfiguration()
        configuration.tls = ClientTLS()
        do {
            _ = try await KafkaConnection.connect(host: "127.0.0.1", port: server.localAddress!.port!, configuration: configuration)
            Issue.record("a peer that does not speak TLS completed a handshake")
        } catch let error as KafkaClientError {
            #expect(error.kind == .tlsFailed)
            #expect(error.description.contains("TLS handshake with 127.0.0.1:"))
        }
        try await server.close()
    }

    @Test("Unreadable TLS material is .tlsFailed and names the file")
    func unreadableMaterial() async throws {
        var configuration = KafkaClientConfiguration()
        configuration.tls = ClientTLS(trust: .caBundle(path: "/nonexistent/ca.pem"))
        do {
            _ = try await KafkaConnection.connect(host: "127.0.0.1", port: 1, configuration: configuration)
            Issue.record("a missing CA bundle was accepted")
        } catch let error as KafkaClientError {
            #expect(error.kind == .tlsFailed)
            #expect(error.description.contains("/nonexistent/ca.pem"))
        }
        var half = ClientTLS()
        half.certificateLocation = "/nonexistent/client.pem"
        configuration.tls = half
        await #expect(throws: KafkaClientError.self) {
            _ = try await KafkaConnection.connect(host: "127.0.0.1", port: 1, configuration: configuration)
        }
    }

    @Test("BoringSSL's reason codes are kept, its paths dropped, and the usual causes named")
    func reasons() {
        let verify = KafkaClientError.tlsHandshakeFailed(
            "h:1",
            Failure(text: "handshakeFailed(sslError([Error: 268435581 error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED at /x/handshake.cc:1]))"))
        #expect(verify.kind == .tlsFailed)
        #expect(verify.description.hasPrefix("TLS handshake with h:1 failed: CERTIFICATE_VERIFY_FAILED (the broker's certificate"))
        #expect(!verify.description.contains("handshake.cc"))
        let plaintext = KafkaClientError.tlsHandshakeFailed("h:1", ChannelError.eof)
        #expect(plaintext.description.contains("is this a TLS listener?"))
    }

    @Test("An IP address is never sent as SNI; a host name or an override is")
    func serverName() {
        var tls = ClientTLS()
        #expect(tls.hostname(connectingTo: "127.0.0.1") == nil)
        #expect(tls.hostname(connectingTo: "::1") == nil)
        #expect(tls.hostname(connectingTo: "broker.example") == "broker.example")
        tls.serverName = "kafka.internal"
        #expect(tls.hostname(connectingTo: "127.0.0.1") == "kafka.internal")
    }

    private struct Failure: Error, CustomStringConvertible {
        var text: String
        var description: String { text }
    }
}
