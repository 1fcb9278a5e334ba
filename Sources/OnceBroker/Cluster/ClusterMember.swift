/// A live broker as the others see it: what Metadata, DescribeCluster and FindCoordinator hand to a
/// client, so it can connect to that broker through the listener it already speaks.
public struct ClusterMember: Sendable, Hashable {
    public var nodeId: Int32
    /// Advertised address per listener name (`PLAINTEXT`, `CLIENT`, ...). A client that came in
    /// through a listener this member lacks is not told about the member, as Kafka does.
    public var endpoints: [String: HostPort]
    /// Kafka's `broker.rack`; nil when the operator gave none.
    public var rack: String?

    public init(nodeId: Int32, endpoints: [String: HostPort], rack: String? = nil) {
        self.nodeId = nodeId
        self.endpoints = endpoints
        self.rack = rack
    }
}
