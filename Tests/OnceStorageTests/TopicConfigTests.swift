import Testing

@testable import OnceStorage

@Suite("TopicConfig")
struct TopicConfigTests {
    @Test func defaultsAreKafkas() {
        let config = TopicConfig()
        #expect(config.segmentBytes == 1_073_741_824)
        #expect(config.segmentMs == 604_800_000)
        #expect(config.retentionMs == 604_800_000)
        #expect(config.retentionBytes == -1)
        #expect(config.cleanupPolicy == ["delete"])
        #expect(config.messageTimestampType == .createTime)
        #expect(config.maxMessageBytes == 1_048_588)
        #expect(config.indexIntervalBytes == 4096)
        #expect(config.minInsyncReplicas == 1)
        #expect(config.entries.allSatisfy { $0.isDefault })
        #expect(config.entries.map(\.name) == (TopicConfig.Key.allCases.map(\.rawValue) + TopicConfig.recordedConfigs.map(\.name)).sorted())
        let entries = Dictionary(uniqueKeysWithValues: config.entries.map { ($0.name, $0.value) })
        #expect(entries["compression.type"] == "producer")
        #expect(entries["delete.retention.ms"] == "86400000")
    }

    @Test func everyKafkaTopicConfigIsAcceptedAndReportedAsSet() throws {
        let config = try TopicConfig(overrides: [
            "compression.type": "lz4", "delete.retention.ms": "900", "flush.ms": "12345678",
            "min.cleanable.dirty.ratio": "0.25", "preallocate": "true", "compression.zstd.level": "-5",
            "leader.replication.throttled.replicas": "0:1,1:1", "follower.replication.throttled.replicas": "*",
        ])
        let entries = Dictionary(uniqueKeysWithValues: config.entries.map { ($0.name, $0) })
        #expect(entries["compression.type"] == .init(name: "compression.type", value: "lz4", isDefault: false))
        #expect(entries["flush.ms"]?.value == "12345678")
        #expect(entries["flush.messages"]?.isDefault == true)
        #expect(TopicConfig.isKnown("compression.type"))
        #expect(!TopicConfig.isKnown("dummy.doesntexist"))
    }

    @Test func overridesApplyAndShowAsNonDefault() throws {
        let config = try TopicConfig(overrides: [
            "segment.bytes": "1024", "retention.ms": "-1", "cleanup.policy": "compact,delete",
            "message.timestamp.type": "LogAppendTime", "min.insync.replicas": "2",
        ])
        #expect(config.segmentBytes == 1024)
        #expect(config.retentionMs == -1)
        #expect(config.cleanupPolicy == ["compact", "delete"])
        #expect(config.messageTimestampType == .logAppendTime)
        #expect(config.minInsyncReplicas == 2)
        let entries = Dictionary(uniqueKeysWithValues: config.entries.map { ($0.name, $0) })
        #expect(entries["segment.bytes"] == .init(name: "segment.bytes", value: "1024", isDefault: false))
        #expect(entries["retention.bytes"] == .init(name: "retention.bytes", value: "-1", isDefault: true))
        #expect(entries["max.message.bytes"]?.value == "1048588")
        #expect(entries["cleanup.policy"]?.isDefault == false)
    }

    @Test(arguments: [
        ["unknown.key": "1"], ["segment.bytes": "10"], ["segment.bytes": "x"], ["segment.ms": "0"],
        ["retention.ms": "-2"], ["cleanup.policy": "keep"], ["cleanup.policy": ""],
        ["message.timestamp.type": "createtime"], ["max.message.bytes": "-1"], ["index.interval.bytes": "-5"],
        ["min.insync.replicas": "0"], ["segment.bytes": "4294967296"],
        ["compression.type": "brotli"], ["delete.retention.ms": "-1"], ["min.cleanable.dirty.ratio": "1.5"],
        ["preallocate": "yes"], ["compression.gzip.level": "10"], ["leader.replication.throttled.replicas": "0-1"],
        ["message.format.version": "3.0"],
    ])
    func invalidOverridesAreRefused(overrides: [String: String]) {
        #expect(throws: StorageError.self) { try TopicConfig(overrides: overrides) }
    }

    @Test func topicNamesFollowKafkasRule() {
        for good in ["a", "A-b_c.9", String(repeating: "x", count: 249), "..."] {
            #expect(TopicName.validationError(good) == nil, "\(good)")
        }
        for bad in ["", ".", "..", "a b", "a/b", "é", String(repeating: "x", count: 250)] {
            #expect(TopicName.validationError(bad) != nil, "\(bad)")
        }
    }
}
