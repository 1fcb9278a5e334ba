/// The topic-level configs the broker honours, parsed from a topic's overrides with Kafka's
/// defaults for the rest. `TopicMetadata.configs` keeps only the overrides, so a default can
/// change in a later release without rewriting every topic.
public struct TopicConfig: Sendable, Equatable {
    /// Size at which the active segment rolls. Default: 1 GiB.
    public var segmentBytes: Int = 1_073_741_824
    /// Age at which the active segment rolls. Default: 7 days.
    public var segmentMs: Int64 = 604_800_000
    /// Age after which a segment is deleted; -1 keeps data forever. Default: 7 days.
    public var retentionMs: Int64 = 604_800_000
    /// Partition size above which the oldest segments are deleted; -1 means no limit. Default: -1.
    public var retentionBytes: Int64 = -1
    /// "delete", "compact" or both. Default: ["delete"].
    public var cleanupPolicy: [String] = ["delete"]
    /// How long the cleaner keeps a tombstone, and a transaction marker with no record left, after
    /// the segment holding it was last written: long enough for a consumer reading from the start
    /// to see the deletion. Default: 1 day.
    public var deleteRetentionMs: Int64 = 86_400_000
    /// Records newer than this (by their segment's largest timestamp) are not compacted yet.
    /// Default: 0.
    public var minCompactionLagMs: Int64 = 0
    /// A partition whose oldest uncleaned record is older than this is cleaned whatever its dirty
    /// ratio. Default: Int64.max (never).
    public var maxCompactionLagMs: Int64 = .max
    /// The share of the cleanable log not yet cleaned above which the cleaner runs. Default: 0.5.
    public var minCleanableDirtyRatio: Double = 0.5
    /// Whose clock stamps records. Default: CreateTime.
    public var messageTimestampType: TimestampType = .createTime
    /// Largest record batch the broker accepts. Default: 1048588.
    public var maxMessageBytes: Int = 1_048_588
    /// Bytes between offset index entries. Default: 4096.
    public var indexIntervalBytes: Int = 4096
    /// Stored for DescribeConfigs; a single broker is always in sync. Default: 1.
    public var minInsyncReplicas: Int = 1

    /// Whether the log cleaner keeps only the latest record per key.
    public var isCompacted: Bool { cleanupPolicy.contains("compact") }

    /// Whether retention deletes old segments.
    public var deletesByRetention: Bool { cleanupPolicy.contains("delete") }

    /// The overrides this config was built from.
    public private(set) var overrides: [String: String] = [:]

    public enum TimestampType: String, Sendable, Equatable {
        case createTime = "CreateTime"
        case logAppendTime = "LogAppendTime"
    }

    public enum Key: String, CaseIterable, Sendable {
        case segmentBytes = "segment.bytes"
        case segmentMs = "segment.ms"
        case retentionMs = "retention.ms"
        case retentionBytes = "retention.bytes"
        case cleanupPolicy = "cleanup.policy"
        case deleteRetentionMs = "delete.retention.ms"
        case minCompactionLagMs = "min.compaction.lag.ms"
        case maxCompactionLagMs = "max.compaction.lag.ms"
        case minCleanableDirtyRatio = "min.cleanable.dirty.ratio"
        case messageTimestampType = "message.timestamp.type"
        case maxMessageBytes = "max.message.bytes"
        case indexIntervalBytes = "index.interval.bytes"
        case minInsyncReplicas = "min.insync.replicas"
    }

    /// All defaults.
    public init() {}

    /// Throws `StorageError.invalidConfig` naming the first unknown key or bad value.
    public init(overrides: [String: String]) throws {
        for (name, value) in overrides.sorted(by: { $0.key < $1.key }) {
            if let key = Key(rawValue: name) {
                try apply(key, value)
            } else if let recorded = Self.recordedByName[name] {
                try Self.check(recorded, value)
            } else {
                throw StorageError.invalidConfig("Unknown topic config name: \(name)")
            }
        }
        self.overrides = overrides
    }

    /// One row of DescribeConfigs.
    public struct Entry: Sendable, Equatable {
        public var name: String
        public var value: String
        public var isDefault: Bool
        public init(name: String, value: String, isDefault: Bool) {
            self.name = name
            self.value = value
            self.isDefault = isDefault
        }
    }

    /// Every topic config Kafka defines with its effective value, in name order.
    public var entries: [Entry] {
        let honoured = Key.allCases.map { key in
            if let value = overrides[key.rawValue] {
                return Entry(name: key.rawValue, value: value, isDefault: false)
            }
            return Entry(name: key.rawValue, value: value(of: key), isDefault: true)
        }
        let recorded = Self.recordedConfigs.map { config in
            Entry(name: config.name, value: overrides[config.name] ?? config.defaultValue, isDefault: overrides[config.name] == nil)
        }
        return (honoured + recorded).sorted { $0.name < $1.name }
    }

    public func value(of key: Key) -> String {
        switch key {
        case .segmentBytes: String(segmentBytes)
        case .segmentMs: String(segmentMs)
        case .retentionMs: String(retentionMs)
        case .retentionBytes: String(retentionBytes)
        case .cleanupPolicy: cleanupPolicy.joined(separator: ",")
        case .deleteRetentionMs: String(deleteRetentionMs)
        case .minCompactionLagMs: String(minCompactionLagMs)
        case .maxCompactionLagMs: String(maxCompactionLagMs)
        case .minCleanableDirtyRatio: String(minCleanableDirtyRatio)
        case .messageTimestampType: messageTimestampType.rawValue
        case .maxMessageBytes: String(maxMessageBytes)
        case .indexIntervalBytes: String(indexIntervalBytes)
        case .minInsyncReplicas: String(minInsyncReplicas)
        }
    }

    private mutating func apply(_ key: Key, _ value: String) throws {
        switch key {
        case .segmentBytes:
            // Kafka's floor is the smallest legacy record; anything below cannot hold a batch anyway.
            segmentBytes = Int(try Self.integer(key, value, in: 14...Int64(Int32.max)))
        case .segmentMs:
            segmentMs = try Self.integer(key, value, in: 1...Int64.max)
        case .retentionMs:
            retentionMs = try Self.integer(key, value, in: -1...Int64.max)
        case .retentionBytes:
            retentionBytes = try Self.integer(key, value, in: Int64.min...Int64.max)
        case .cleanupPolicy:
            let policies = value.split(separator: ",").map { $0.trimmingWhitespace() }
            guard !policies.isEmpty, policies.allSatisfy({ $0 == "delete" || $0 == "compact" }) else {
                throw StorageError.invalidConfig("\(key.rawValue)=\(value): expected delete, compact or both")
            }
            cleanupPolicy = policies
        case .deleteRetentionMs:
            deleteRetentionMs = try Self.integer(key, value, in: 0...Int64.max)
        case .minCompactionLagMs:
            minCompactionLagMs = try Self.integer(key, value, in: 0...Int64.max)
        case .maxCompactionLagMs:
            maxCompactionLagMs = try Self.integer(key, value, in: 1...Int64.max)
        case .minCleanableDirtyRatio:
            guard let ratio = Double(value.trimmingWhitespace()), (0.0...1.0).contains(ratio) else {
                throw StorageError.invalidConfig("\(key.rawValue)=\(value): expected a number in [0, 1]")
            }
            minCleanableDirtyRatio = ratio
        case .messageTimestampType:
            guard let type = TimestampType(rawValue: value) else {
                throw StorageError.invalidConfig("\(key.rawValue)=\(value): expected CreateTime or LogAppendTime")
            }
            messageTimestampType = type
        case .maxMessageBytes:
            maxMessageBytes = Int(try Self.integer(key, value, in: 0...Int64(Int32.max)))
        case .indexIntervalBytes:
            indexIntervalBytes = Int(try Self.integer(key, value, in: 0...Int64(Int32.max)))
        case .minInsyncReplicas:
            minInsyncReplicas = Int(try Self.integer(key, value, in: 1...Int64(Int32.max)))
        }
    }

    private static func integer(_ key: Key, _ value: String, in range: ClosedRange<Int64>) throws -> Int64 {
        guard let n = Int64(value.trimmingWhitespace()), range.contains(n) else {
            throw StorageError.invalidConfig("\(key.rawValue)=\(value): expected an integer in \(range)")
        }
        return n
    }
}

extension StringProtocol {
    fileprivate func trimmingWhitespace() -> String {
        String(self.drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}

/// Kafka's topic naming rule, checked before anything touches the disk because the name becomes a
/// directory name.
public enum TopicName {
    public static let maxLength = 249

    /// Nil when valid, else why not.
    public static func validationError(_ name: String) -> String? {
        if name.isEmpty { return "topic name is empty" }
        if name == "." || name == ".." { return "topic name cannot be \"\(name)\"" }
        if name.utf8.count > maxLength { return "topic name is longer than \(maxLength) characters" }
        let legal = name.utf8.allSatisfy { c in
            (c >= 0x61 && c <= 0x7A) || (c >= 0x41 && c <= 0x5A) || (c >= 0x30 && c <= 0x39)
                || c == 0x2E || c == 0x5F || c == 0x2D
        }
        return legal ? nil : "topic name \(name) has characters other than ASCII letters, digits, '.', '_' and '-'"
    }
}
