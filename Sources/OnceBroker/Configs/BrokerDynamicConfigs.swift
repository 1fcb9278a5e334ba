/// The rules for dynamic broker config changes (AlterConfigs on a BROKER resource), as Kafka's
/// DynamicBrokerConfig applies them: a config the broker reads only at startup is refused, a
/// known dynamic config must have a value of its type, and a name Kafka does not know is taken as
/// given (Kafka keeps custom configs for plugins). Kafka answers every refusal INVALID_REQUEST.
///
/// This broker records the accepted values, durably, and reports them in DescribeConfigs; its own
/// settings come from the command line, so the recorded values do not change how it runs.
enum BrokerDynamicConfigs {
    enum Kind {
        case int(ClosedRange<Int64>)
        case long(ClosedRange<Int64>)
        case boolean
        case choice([String])
        case list([String])
    }

    /// Kafka's dynamic broker configs this broker checks, with their types and Kafka's defaults
    /// (nil where Kafka has none and derives the value from another config).
    static let known: [String: (kind: Kind, defaultValue: String?)] = [
        "background.threads": (.int(1...Int64(Int32.max)), "10"),
        "compression.type": (.choice(["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]), "producer"),
        "log.cleaner.threads": (.int(0...Int64(Int32.max)), "1"),
        "log.cleanup.policy": (.list(["delete", "compact"]), "delete"),
        "log.flush.interval.messages": (.long(1...Int64.max), String(Int64.max)),
        "log.flush.interval.ms": (.long(Int64.min...Int64.max), nil),
        "log.index.interval.bytes": (.int(0...Int64(Int32.max)), "4096"),
        "log.message.timestamp.type": (.choice(["CreateTime", "LogAppendTime"]), "CreateTime"),
        "log.retention.bytes": (.long(Int64.min...Int64.max), "-1"),
        "log.retention.ms": (.long(Int64.min...Int64.max), nil),
        "log.roll.ms": (.long(Int64.min...Int64.max), nil),
        "log.segment.bytes": (.int(14...Int64(Int32.max)), "1073741824"),
        "max.connections": (.int(0...Int64(Int32.max)), String(Int32.max)),
        "max.connections.per.ip": (.int(0...Int64(Int32.max)), String(Int32.max)),
        "message.max.bytes": (.int(0...Int64(Int32.max)), "1048588"),
        "min.insync.replicas": (.int(1...Int64(Int32.max)), "1"),
        "num.io.threads": (.int(1...Int64(Int32.max)), "8"),
        "num.network.threads": (.int(1...Int64(Int32.max)), "3"),
        "num.replica.fetchers": (.int(Int64(Int32.min)...Int64(Int32.max)), "1"),
        "sasl.kerberos.min.time.before.relogin": (.long(Int64.min...Int64.max), "60000"),
        "unclean.leader.election.enable": (.boolean, "false"),
    ]

    /// Why `overrides` cannot be applied, or nil. `fixed` names the settings this broker takes
    /// only at startup.
    static func problem(_ overrides: [String: String], fixed: Set<String>) -> String? {
        let refused = overrides.keys.filter(fixed.contains).sorted()
        if !refused.isEmpty { return "Cannot update these configs dynamically: Set(\(refused.joined(separator: ", ")))" }
        for (name, value) in overrides.sorted(by: { $0.key < $1.key }) {
            guard let kind = known[name]?.kind else { continue }
            if let problem = Self.problem(name, value, kind) { return problem }
        }
        return nil
    }

    private static func problem(_ name: String, _ value: String, _ kind: Kind) -> String? {
        let trimmed = value.trimmingSpaces()
        switch kind {
        case .int(let range), .long(let range):
            let type = if case .int = kind { "INT" } else { "LONG" }
            guard let number = Int64(trimmed) else { return "Invalid value \(value) for configuration \(name): Not a number of type \(type)" }
            return range.contains(number) ? nil : "Invalid value \(value) for configuration \(name): Value must be at least \(range.lowerBound)"
        case .boolean:
            return ["true", "false"].contains(trimmed.lowercased())
                ? nil : "Invalid value \(value) for configuration \(name): Expected value to be either true or false"
        case .choice(let choices):
            return choices.contains(trimmed)
                ? nil : "Invalid value \(value) for configuration \(name): String must be one of: \(choices.joined(separator: ", "))"
        case .list(let choices):
            let items = trimmed.split(separator: ",").map { $0.trimmingSpaces() }
            return !items.isEmpty && items.allSatisfy(choices.contains)
                ? nil : "Invalid value \(value) for configuration \(name): expected a list of \(choices.joined(separator: ", "))"
        }
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        String(self.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
