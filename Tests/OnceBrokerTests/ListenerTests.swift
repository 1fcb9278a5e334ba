import KafkaProtocol
import NIOCore
@testable import OnceBroker
import Testing

@Suite("Listeners in Kafka's form")
struct ListenerTests {
    @Test("All four protocols parse, names are case-insensitive and an empty host binds every interface")
    func fourProtocols() throws {
        let listeners = try Listener.parseList(
            "PLAINTEXT://127.0.0.1:9092, ssl://:9093,SASL_PLAINTEXT://[::1]:9094,SASL_SSL://localhost:9095")
        #expect(listeners.map(\.name) == ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"])
        #expect(listeners.map(\.securityProtocol) == [.plaintext, .ssl, .saslPlaintext, .saslSsl])
        #expect(listeners.map(\.address) == [
            HostPort(host: "127.0.0.1", port: 9092), HostPort(host: "0.0.0.0", port: 9093),
            HostPort(host: "::1", port: 9094), HostPort(host: "localhost", port: 9095),
        ])
    }

    @Test("A named listener needs listener.security.protocol.map")
    func namedListeners() throws {
        #expect(throws: Listener.ParseError.self) { try Listener.parseList("CLIENT://127.0.0.1:9092") }
        let map = try Listener.parseProtocolMap("CLIENT:SSL,internal:plaintext")
        let listeners = try Listener.parseList("CLIENT://127.0.0.1:9093,INTERNAL://127.0.0.1:9092", protocolMap: map)
        #expect(listeners.map(\.securityProtocol) == [.ssl, .plaintext])
        #expect(throws: Listener.ParseError.self) { try Listener.parseProtocolMap("CLIENT:TLS") }
    }

    @Test("Kafka's own checks: no name twice, no port twice, no malformed entry")
    func refusals() {
        #expect(throws: Listener.ParseError.self) { try Listener.parseList("PLAINTEXT://a:1,PLAINTEXT://a:2") }
        #expect(throws: Listener.ParseError.self) { try Listener.parseList("PLAINTEXT://a:9092,SSL://b:9092") }
        #expect(throws: Listener.ParseError.self) { try Listener.parseList("127.0.0.1:9092") }
        #expect(throws: Listener.ParseError.self) { try Listener.parseList("PLAINTEXT://127.0.0.1") }
        #expect(throws: Listener.ParseError.self) { try Listener.parseList("") }
    }

    @Test("advertised.listeners is matched by name and must be an address a client can reach")
    func advertised() throws {
        let listeners = try Listener.parseList("PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093")
        let advertised = try Listener.advertise("ssl://proxy.example:19093", on: listeners)
        #expect(advertised[0].advertised == nil)
        #expect(advertised[1].advertised == HostPort(host: "proxy.example", port: 19093))
        #expect(throws: Listener.ParseError.self) { try Listener.advertise("SASL_SSL://proxy:1", on: listeners) }
        #expect(throws: Listener.ParseError.self) { try Listener.advertise("SSL://0.0.0.0:9093", on: listeners) }
    }

    @Test("Metadata, DescribeCluster and FindCoordinator answer the listener the request came through")
    func addressPerListener() async throws {
        let h = BrokerHarness {
            $0.listeners = [
                .plaintext(HostPort(host: "127.0.0.1", port: 9092)),
                Listener(
                    name: "SASL_PLAINTEXT", securityProtocol: .saslPlaintext, address: HostPort(host: "127.0.0.1", port: 9094),
                    advertised: HostPort(host: "sasl.example", port: 19094)),
            ]
        }
        let sasl = ConnectionSession(listenerName: "SASL_PLAINTEXT", securityProtocol: .saslPlaintext, peerHost: "127.0.0.1")
        // A SASL listener serves Metadata only once the connection has authenticated.
        sasl.sasl.withLock { $0.phase = .authenticated }
        let metadata = try await h.send(MetadataRequest(), version: 12, session: sasl)
        #expect(metadata.brokers.map(\.host) == ["sasl.example"])
        #expect(metadata.brokers.map(\.port) == [19094])
        let plain = try await h.send(MetadataRequest(), version: 12, session: .plaintext())
        #expect(plain.brokers.map(\.host) == ["127.0.0.1"])
        #expect(plain.brokers.map(\.port) == [9092])
        let cluster = try await h.send(DescribeClusterRequest(), version: 1, session: sasl)
        #expect(cluster.brokers.map(\.port) == [19094])
        var find = FindCoordinatorRequest()
        find.key = "g"
        let coordinator = try await h.send(find, version: 3, session: sasl)
        #expect(coordinator.host == "sasl.example")
        #expect(coordinator.port == 19094)
    }
}

extension BrokerHarness {
    /// `send` through a given connection's session, for answers that depend on the listener.
    fileprivate func send<R: KafkaRequest>(_ request: R, version: Int16, session: ConnectionSession) async throws -> R.Response {
        let future = try broker.handle(frame: Self.frame(request, version: version), eventLoop: eventLoop, session: session)
        var response = try #require(try await future.get())
        _ = response.readInteger(as: Int32.self)
        _ = try ResponseHeader(from: &response, version: KafkaHeaderVersions.response(apiKey: R.apiKey, apiVersion: version))
        return try R.Response(from: &response, version: version)
    }
}
