/// The topic configs Kafka 4.x defines beyond the ones `TopicConfig.Key` acts on. A client may set
/// any of them (CreateTopics, AlterConfigs) and read them back, so tools written for Kafka keep
/// working; their values are checked as Kafka checks them, but a single broker that stores batches
/// as they were produced has nothing to do with them: replication throttles, tiered storage,
/// compression levels, flush hints and broker-side recompression.
extension TopicConfig {
    /// How a recorded config's value is checked.
    enum ValueKind: Sendable {
        case integer(ClosedRange<Int64>)
        case ratio
        case boolean
        case oneOf([String])
        /// A comma-separated list of replica specs, "*" or empty (throttled replicas).
        case replicaList
    }

    struct RecordedConfig: Sendable {
        var name: String
        var defaultValue: String
        var kind: ValueKind
    }

    static let recordedConfigs: [RecordedConfig] = [
        .init(name: "compression.type", defaultValue: "producer",
              kind: .oneOf(["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"])),
        .init(name: "compression.gzip.level", defaultValue: "-1", kind: .integer(-1...9)),
        .init(name: "compression.lz4.level", defaultValue: "9", kind: .integer(1...17)),
        .init(name: "compression.zstd.level", defaultValue: "3", kind: .integer(-131_072...22)),
        .init(name: "file.delete.delay.ms", defaultValue: "60000", kind: .integer(0...Int64.max)),
        .init(name: "flush.messages", defaultValue: String(Int64.max), kind: .integer(1...Int64.max)),
        .init(name: "flush.ms", defaultValue: String(Int64.max), kind: .integer(0...Int64.max)),
        .init(name: "follower.replication.throttled.replicas", defaultValue: "", kind: .replicaList),
        .init(name: "leader.replication.throttled.replicas", defaultValue: "", kind: .replicaList),
        .init(name: "local.retention.bytes", defaultValue: "-2", kind: .integer(-2...Int64.max)),
        .init(name: "local.retention.ms", defaultValue: "-2", kind: .integer(-2...Int64.max)),
        .init(name: "message.timestamp.after.max.ms", defaultValue: "3600000", kind: .integer(0...Int64.max)),
        .init(name: "message.timestamp.before.max.ms", defaultValue: String(Int64.max), kind: .integer(0...Int64.max)),
        .init(name: "preallocate", defaultValue: "false", kind: .boolean),
        .init(name: "remote.log.copy.disable", defaultValue: "false", kind: .boolean),
        .init(name: "remote.log.delete.on.disable", defaultValue: "false", kind: .boolean),
        .init(name: "remote.storage.enable", defaultValue: "false", kind: .boolean),
        .init(name: "segment.index.bytes", defaultValue: "10485760", kind: .integer(4...Int64(Int32.max))),
        .init(name: "segment.jitter.ms", defaultValue: "0", kind: .integer(0...Int64.max)),
        .init(name: "unclean.leader.election.enable", defaultValue: "false", kind: .boolean),
    ]

    static let recordedByName: [String: RecordedConfig] = Dictionary(
        uniqueKeysWithValues: recordedConfigs.map { ($0.name, $0) })

    /// Whether `name` is a topic config Kafka 4.x defines.
    public static func isKnown(_ name: String) -> Bool {
        Key(rawValue: name) != nil || recordedByName[name] != nil
    }

    /// Throws `StorageError.invalidConfig` when `value` is not one Kafka accepts for `config`.
    static func check(_ config: RecordedConfig, _ value: String) throws {
        let trimmed = value.trimmingCharacters(in: " ")
        let valid: Bool
        let expected: String
        switch config.kind {
        case .integer(let range):
            valid = Int64(trimmed).map(range.contains) ?? false
            expected = "an integer in \(range)"
        case .ratio:
            valid = Double(trimmed).map { (0.0...1.0).contains($0) } ?? false
            expected = "a number in [0, 1]"
        case .boolean:
            valid = ["true", "false"].contains(trimmed.lowercased())
            expected = "true or false"
        case .oneOf(let choices):
            valid = choices.contains(trimmed.lowercased())
            expected = "one of " + choices.joined(separator: ", ")
        case .replicaList:
            valid = trimmed.isEmpty || trimmed == "*" || trimmed.split(separator: ",").allSatisfy { spec in
                let parts = spec.split(separator: ":", omittingEmptySubsequences: false)
                return parts.count == 2 && parts.allSatisfy { Int32($0.trimmingCharacters(in: " ")) != nil }
            }
            expected = "partition:broker pairs separated by commas, or *"
        }
        guard valid else { throw StorageError.invalidConfig("\(config.name)=\(value): expected \(expected)") }
    }
}

extension StringProtocol {
    fileprivate func trimmingCharacters(in set: Character) -> String {
        String(self.drop(while: { $0 == set }).reversed().drop(while: { $0 == set }).reversed())
    }
}
