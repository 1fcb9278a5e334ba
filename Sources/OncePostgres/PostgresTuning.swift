/// The postgres engine's timings, each a broker flag (see README's flag table).
public struct PostgresTuning: Sendable, Hashable {
    /// How long appends nobody waits for yet (acks=0 and 1, or before their handler waits) gather
    /// before a round commits them anyway: longer means fewer, larger rounds. Default: 20 ms.
    public var commitLinger: Duration = .milliseconds(20)
    /// The first pause after the database became unreachable; each failed attempt doubles it.
    /// Default: 50 ms.
    public var reconnectBackoff: Duration = .milliseconds(50)
    /// The longest pause between reconnection attempts. Default: 2 s.
    public var reconnectBackoffMax: Duration = .seconds(2)
    /// How long a lease taken at start or with a new partition lasts before a heartbeat renews it;
    /// the broker passes its session timeout, which renewals and takeovers use too, so no lease
    /// outlives the session that is meant to bound failover. Default: 9 s.
    public var leaseLength: Duration = .milliseconds(9000)

    public init() {}
}

extension Duration {
    var timeInterval: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
    var wholeMilliseconds: Int64 { components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000 }
}
