import KafkaProtocol
import NIOCore
import OnceCore

/// The consumer protocol's embedded subscription and assignment bytes, for the coordinator's part
/// in KIP-848's migration: a consumer group reads classic members' subscriptions and hands them
/// assignments it computed, and a classic group it becomes is seeded with encoded assignments.
enum ConsumerProtocolBytes {
    /// The version prefix of embedded bytes; a version newer than ours is read as our newest, as
    /// Kafka's ConsumerProtocol does (newer versions only add fields at the end).
    static func version(_ bytes: [UInt8]) -> Int16? {
        var b = ByteBuffer(bytes: bytes)
        return b.readInteger(as: Int16.self)
    }

    static func subscription(_ bytes: [UInt8]) -> ModernGroup.ClassicSubscription? {
        var b = ByteBuffer(bytes: bytes)
        guard let version = b.readInteger(as: Int16.self), version >= 0,
            let s = try? ConsumerProtocolSubscription(
                from: &b, version: min(version, ConsumerProtocolSubscription.validVersions.upperBound))
        else { return nil }
        var owned: PartitionAssignment = [:]
        for tp in s.ownedPartitions { owned[tp.topic, default: []].formUnion(tp.partitions) }
        return ModernGroup.ClassicSubscription(topics: s.topics, ownedPartitions: owned, rackId: s.rackId)
    }

    static func assignment(_ bytes: [UInt8]) -> PartitionAssignment? {
        // A member that never synced holds no assignment bytes: it owns nothing.
        guard !bytes.isEmpty else { return [:] }
        var b = ByteBuffer(bytes: bytes)
        guard let version = b.readInteger(as: Int16.self), version >= 0,
            let a = try? ConsumerProtocolAssignment(
                from: &b, version: min(version, ConsumerProtocolAssignment.validVersions.upperBound))
        else { return nil }
        var result: PartitionAssignment = [:]
        for tp in a.assignedPartitions { result[tp.topic, default: []].formUnion(tp.partitions) }
        return result
    }

    /// `assignment` in the version of the member's own subscription, as Kafka's `prepareAssignment`.
    static func encode(_ assignment: PartitionAssignment, like subscription: [UInt8]?) -> [UInt8] {
        let version = max(0, min(subscription.flatMap(version) ?? 0, ConsumerProtocolAssignment.validVersions.upperBound))
        var a = ConsumerProtocolAssignment()
        a.assignedPartitions = assignment.keys.sorted().map { topic in
            var tp = ConsumerProtocolAssignment.TopicPartition()
            tp.topic = topic
            tp.partitions = assignment[topic]!.sorted()
            return tp
        }
        var b = ByteBufferAllocator().buffer(capacity: 64)
        b.writeInteger(version)
        a.encode(into: &b, version: version)
        return Array(buffer: b)
    }
}
