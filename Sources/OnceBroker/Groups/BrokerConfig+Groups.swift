import OnceCore

extension BrokerConfig {
    /// The group coordinator's settings, from the broker's.
    var groupConfig: GroupConfig {
        var c = GroupConfig()
        c.initialRebalanceDelayMs = groupInitialRebalanceDelayMs
        c.offsetsRetentionMs = offsetsRetentionMinutes * 60_000
        return c
    }
}
