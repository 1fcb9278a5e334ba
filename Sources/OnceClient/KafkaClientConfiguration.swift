import KafkaProtocol

/// Settings shared by every connection a client opens.
public struct KafkaClientConfiguration: Sendable {
    /// Sent in every request header; brokers log it and use it for quotas.
    /// Default: "once".
    public var clientId: String = "once"

    /// Reported to the broker in ApiVersions (v3+), where `kafka-client-metrics` style tooling
    /// shows it. Default: "once".
    public var softwareName: String = "once"

    /// Default: "0.1.0".
    public var softwareVersion: String = OnceVersion.string

    /// How long a TCP connect may take. Default: 10 seconds.
    public var connectTimeout: Duration = .seconds(10)

    /// How long to wait for any one response beyond what the request itself asks the broker to
    /// wait (a fetch's max wait, a produce's timeout). Default: 30 seconds.
    public var requestTimeout: Duration = .seconds(30)

    /// The largest response frame accepted. Default: 100 MiB.
    public var maxResponseSize: Int = 100 * 1024 * 1024

    /// TLS for every connection, bootstrap and brokers; nil speaks plaintext. Default: nil.
    public var tls: ClientTLS?

    /// Authenticate every connection with SASL; nil for listeners without SASL. Default: nil.
    public var sasl: ClientSASL?

    public init() {}
}
