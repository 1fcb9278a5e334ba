/// Partitions by topic name. KIP-848 speaks of topic ids on the wire; the broker translates, so the
/// rules here survive a topic being recreated under the same name only as far as the broker lets them.
public typealias PartitionAssignment = [String: Set<Int32>]

extension Dictionary where Key == String, Value == Set<Int32> {
    /// Every partition, sorted, for deterministic iteration.
    public var sortedPartitions: [GroupPartition] {
        flatMap { topic, partitions in partitions.map { GroupPartition(topic, $0) } }.sorted()
    }

    public var partitionCount: Int { values.reduce(0) { $0 + $1.count } }

    /// Whether every partition of `other` is also here.
    public func contains(_ other: PartitionAssignment) -> Bool {
        other.allSatisfy { topic, partitions in partitions.isSubset(of: self[topic] ?? []) }
    }

    public func intersecting(_ other: PartitionAssignment) -> PartitionAssignment {
        var result: PartitionAssignment = [:]
        for (topic, partitions) in self {
            let common = partitions.intersection(other[topic] ?? [])
            if !common.isEmpty { result[topic] = common }
        }
        return result
    }

    public func subtracting(_ other: PartitionAssignment) -> PartitionAssignment {
        var result: PartitionAssignment = [:]
        for (topic, partitions) in self {
            let rest = partitions.subtracting(other[topic] ?? [])
            if !rest.isEmpty { result[topic] = rest }
        }
        return result
    }

    public func union(_ other: PartitionAssignment) -> PartitionAssignment {
        merging(other) { $0.union($1) }
    }

    init(_ partitions: some Sequence<GroupPartition>) {
        var result: PartitionAssignment = [:]
        for p in partitions { result[p.topic, default: []].insert(p.partition) }
        self = result
    }
}
