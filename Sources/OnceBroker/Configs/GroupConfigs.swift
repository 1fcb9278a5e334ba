/// The group-level configs Kafka 4.0 defines (GroupConfig), with the broker defaults and bounds
/// Kafka ships. They tune KIP-848 consumer groups and KIP-932 share groups; this broker's classic
/// groups take their timeouts from JoinGroup, so the values are kept and reported for tools but
/// change nothing here.
enum GroupConfigs {
    struct Definition: Sendable {
        var name: String
        var defaultValue: String
        /// Valid values: an integer range (named after the broker bounds Kafka checks against) or
        /// a set of words.
        var range: (bounds: ClosedRange<Int64>, lowerName: String, upperName: String)?
        var choices: [String] = []
    }

    static let all: [Definition] = [
        .init(name: "consumer.heartbeat.interval.ms", defaultValue: "5000",
              range: (5_000...15_000, "group.consumer.min.heartbeat.interval.ms", "group.consumer.max.heartbeat.interval.ms")),
        .init(name: "consumer.session.timeout.ms", defaultValue: "45000",
              range: (45_000...60_000, "group.consumer.min.session.timeout.ms", "group.consumer.max.session.timeout.ms")),
        .init(name: "share.auto.offset.reset", defaultValue: "latest", range: nil, choices: ["latest", "earliest"]),
        .init(name: "share.heartbeat.interval.ms", defaultValue: "5000",
              range: (5_000...15_000, "group.share.min.heartbeat.interval.ms", "group.share.max.heartbeat.interval.ms")),
        .init(name: "share.record.lock.duration.ms", defaultValue: "30000",
              range: (15_000...60_000, "group.share.min.record.lock.duration.ms", "group.share.max.record.lock.duration.ms")),
        .init(name: "share.session.timeout.ms", defaultValue: "45000",
              range: (45_000...60_000, "group.share.min.session.timeout.ms", "group.share.max.session.timeout.ms")),
    ]

    static let byName = Dictionary(uniqueKeysWithValues: all.map { ($0.name, $0) })

    /// Why these overrides are not valid group configs, in Kafka's words; nil if they are.
    static func problem(_ overrides: [String: String]) -> String? {
        for (name, value) in overrides.sorted(by: { $0.key < $1.key }) {
            guard let definition = byName[name] else { return "Unknown group config name: \(name)" }
            if let range = definition.range {
                guard let number = Int64(value) else {
                    return "Invalid value \(value) for configuration \(name): Not a number of type INT"
                }
                if number < range.bounds.lowerBound { return "\(name) must be greater than or equal to \(range.lowerName)" }
                if number > range.bounds.upperBound { return "\(name) must be less than or equal to \(range.upperName)" }
            } else if !definition.choices.contains(value.lowercased()) {
                return "Invalid value \(value) for configuration \(name): must be one of \(definition.choices.joined(separator: ", "))"
            }
        }
        return nil
    }
}
