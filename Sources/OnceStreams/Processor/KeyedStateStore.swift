import OnceClient

/// Keyed state per input partition, with the changes of the open transaction kept apart from
/// the committed values: a commit folds them in (and they go to the changelog in the same Kafka
/// transaction), an abort drops them, so state never runs ahead of the committed output.
public struct KeyedStateStore: Sendable {
    private var committed: [TopicPartition: [String: [UInt8]]] = [:]
    private var pending: [TopicPartition: [String: [UInt8]?]] = [:]

    public init() {}

    public func value(forKey key: String, in partition: TopicPartition) -> [UInt8]? {
        if let change = pending[partition]?[key] { return change }
        return committed[partition]?[key]
    }

    /// nil deletes the key.
    public mutating func setValue(_ value: [UInt8]?, forKey key: String, in partition: TopicPartition) {
        pending[partition, default: [:]].updateValue(value, forKey: key)
    }

    /// The open transaction's changes, last write per key: the changelog records to send.
    public var pendingChanges: [(partition: TopicPartition, key: String, value: [UInt8]?)] {
        pending.flatMap { partition, changes in
            changes.sorted { $0.key < $1.key }.map { (partition, $0.key, $0.value) }
        }
    }

    public mutating func commit() {
        for (partition, changes) in pending {
            for (key, value) in changes { committed[partition, default: [:]][key] = value }
        }
        pending = [:]
    }

    public mutating func abort() { pending = [:] }

    public func isLoaded(_ partition: TopicPartition) -> Bool { committed[partition] != nil }

    /// Replaces a partition's committed state, as read back from its changelog.
    public mutating func restore(_ partition: TopicPartition, _ values: [String: [UInt8]]) {
        committed[partition] = values
        pending[partition] = nil
    }

    /// Forgets every partition, e.g. after a rebalance, when another instance may have changed them.
    public mutating func unloadAll() {
        committed = [:]
        pending = [:]
    }

    public func committedValues(in partition: TopicPartition) -> [String: [UInt8]] { committed[partition] ?? [:] }
}
