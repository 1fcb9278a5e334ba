extension PartitionAssignor {
    /// Divides the partitions of the topics each member subscribes to. Members are taken in
    /// member-id order so every leader computes the same plan Kafka's assignors would.
    ///
    /// - Parameters:
    ///   - subscriptions: each member's subscribed topics.
    ///   - partitionCounts: partitions per topic; topics missing here are skipped.
    public func assign(
        subscriptions: [String: [String]], partitionCounts: [String: Int32]
    ) -> [String: [TopicPartition]] {
        var result = Dictionary(uniqueKeysWithValues: subscriptions.keys.map { ($0, [TopicPartition]()) })
        switch self {
        case .range:
            let topics = Set(subscriptions.values.flatMap { $0 }).sorted()
            for topic in topics {
                guard let count = partitionCounts[topic], count > 0 else { continue }
                let members = subscriptions.filter { $0.value.contains(topic) }.keys.sorted()
                let perMember = Int(count) / members.count
                let extra = Int(count) % members.count
                var next: Int32 = 0
                for (i, member) in members.enumerated() {
                    let n = perMember + (i < extra ? 1 : 0)
                    for _ in 0..<n {
                        result[member]!.append(TopicPartition(topic, next))
                        next += 1
                    }
                }
            }
        case .roundRobin:
            let members = subscriptions.keys.sorted()
            let all = Set(subscriptions.values.flatMap { $0 }).sorted().flatMap { topic in
                (0..<(partitionCounts[topic] ?? 0)).map { TopicPartition(topic, $0) }
            }
            var cursor = 0
            for tp in all {
                // Skip members not subscribed to this topic, as Kafka's round-robin does.
                for _ in 0..<members.count {
                    let member = members[cursor % members.count]
                    cursor += 1
                    if subscriptions[member]!.contains(tp.topic) {
                        result[member]!.append(tp)
                        break
                    }
                }
            }
        }
        return result
    }
}
