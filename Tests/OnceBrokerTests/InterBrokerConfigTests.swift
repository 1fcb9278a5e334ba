@testable import OnceBroker
import OnceCore
import Testing

@Suite("Inter-broker listener: which protocols and TLS material a broker may start with")
struct InterBrokerConfigTests {
    private static func config(_ kind: SecurityProtocol, tls: BrokerTLS? = nil, sasl: Bool = false) -> BrokerConfig {
        var config = BrokerConfig()
        config.listeners = [Listener(name: "INTERNAL", securityProtocol: kind, address: HostPort(host: "127.0.0.1", port: 0))]
        config.interBrokerListenerName = "INTERNAL"
        config.tls = tls
        if sasl { config.interBrokerSasl = (.scramSha512, "broker", "secret") }
        return config
    }

    private static func tls(ca: String?) -> BrokerTLS {
        var tls = BrokerTLS(certificateLocation: "/etc/once/broker.pem", keyLocation: "/etc/once/broker.key")
        tls.caLocation = ca
        return tls
    }

    @Test("An SSL or SASL_SSL listener needs the broker's certificate and key, and a CA bundle to verify its peers")
    func tlsNeedsMaterial() {
        for kind in [SecurityProtocol.ssl, .saslSsl] {
            let sasl = kind == .saslSsl
            #expect(Self.config(kind, sasl: sasl).interBrokerProblem?.contains("--ssl-certificate-location") == true)
            #expect(Self.config(kind, tls: Self.tls(ca: nil), sasl: sasl).interBrokerProblem == InterBrokerTLS.missingAuthorities)
            #expect(Self.config(kind, tls: Self.tls(ca: "/etc/once/ca.pem"), sasl: sasl).interBrokerProblem == nil)
        }
    }

    @Test("Credentials go with a SASL listener and only with one")
    func saslMatchesProtocol() {
        let material = Self.tls(ca: "/etc/once/ca.pem")
        #expect(Self.config(.ssl, tls: material, sasl: true).interBrokerProblem?.contains("SASL_SSL") == true)
        #expect(Self.config(.saslSsl, tls: material).interBrokerProblem?.contains("--inter-broker-sasl-username") == true)
        #expect(Self.config(.saslPlaintext).interBrokerProblem?.contains("--inter-broker-sasl-username") == true)
        #expect(Self.config(.plaintext, sasl: true).interBrokerProblem != nil)
        #expect(Self.config(.plaintext).interBrokerProblem == nil)
        #expect(Self.config(.saslPlaintext, sasl: true).interBrokerProblem == nil)
    }

    @Test("A listener name no listener has is refused; nothing asked for is no problem")
    func missingListener() {
        var config = Self.config(.plaintext)
        config.interBrokerListenerName = "ELSEWHERE"
        #expect(config.interBrokerProblem?.contains("ELSEWHERE") == true)
        config.interBrokerListenerName = nil
        config.listeners = [Listener(name: "SSL", securityProtocol: .ssl, address: HostPort(host: "127.0.0.1", port: 0))]
        #expect(config.interBrokerProblem == nil)
        #expect(config.interBrokerListener == nil)
    }

    @Test("Building the inter-broker TLS refuses a configuration whose CA bundle is missing, naming the file")
    func contextNamesMissingFiles() {
        var config = Self.config(.ssl, tls: Self.tls(ca: nil))
        #expect { try InterBrokerTLS(config) } throws: { "\($0)".contains("--ssl-ca-location") }
        config.tls = Self.tls(ca: "/nonexistent/once-ca.pem")
        #expect { try InterBrokerTLS(config) } throws: { "\($0)".contains("/etc/once/broker.pem") }
    }
}
