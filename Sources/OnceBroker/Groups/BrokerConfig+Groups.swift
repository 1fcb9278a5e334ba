import OnceCore

extension BrokerConfig {
    /// The names `groupConsumerAssignors` may hold.
    public static var serverAssignorNames: [String] { ServerAssignor.allCases.map(\.rawValue) }

    /// The group coordinator's settings, from the broker's.
    var groupConfig: GroupConfig {
        var c = GroupConfig()
        c.initialRebalanceDelayMs = groupInitialRebalanceDelayMs
        c.offsetsRetentionMs = offsetsRetentionMinutes * 60_000
        c.consumerHeartbeatIntervalMs = groupConsumerHeartbeatIntervalMs
        c.consumerSessionTimeoutMs = groupConsumerSessionTimeoutMs
        c.consumerAssignors = groupConsumerAssignors.compactMap(ServerAssignor.init(rawValue:))
        c.consumerMaxSize = groupConsumerMaxSize
        c.consumerMigrationPolicy = groupConsumerMigrationPolicy
        return c
    }
}
