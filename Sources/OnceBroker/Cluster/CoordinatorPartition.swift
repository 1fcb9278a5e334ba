import OnceCore

/// Which internal partition holds a group's or a transactional id's state: Kafka's
/// `Utils.abs(key.hashCode) % partitions`, so the same key lands on the same partition as in Kafka.
enum CoordinatorPartition {
    static func of(key: String, topic: String, partitions: Int32) -> TopicPartitionKey {
        guard partitions > 1 else { return TopicPartitionKey(topic, 0) }
        return TopicPartitionKey(topic, Int32((javaHashCode(key) & 0x7fff_ffff) % partitions))
    }

    /// Java's `String.hashCode` over UTF-16 code units.
    static func javaHashCode(_ s: String) -> Int32 {
        var h: Int32 = 0
        for unit in s.utf16 { h = h &* 31 &+ Int32(unit) }
        return h
    }
}
