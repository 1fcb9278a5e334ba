import KafkaProtocol

/// How this broker's requests reach another broker of its cluster. Production's is
/// `InterBrokerClient`, one connection per node over the inter-broker listener; the cluster
/// simulator's hands the same encoded frames to the other simulated broker's request handling
/// across its faulty network, so the markers and KIP-890 checks brokers exchange run under its
/// seeds. `TransactionPeers` knows nothing else of the network.
protocol InterBrokerTransport: Sendable {
    /// Sends `request` at `version` to the live broker `nodeId`. It throws when no answer came
    /// (no endpoint, connect failed, timed out, connection closed) or the answer is not
    /// understood; the caller decides whether and when to ask again.
    func send<R: KafkaRequest>(_ request: R, version: Int16, to nodeId: Int32) async throws -> R.Response
}

extension InterBrokerClient: InterBrokerTransport {}
