/// Kafka's range server assignor: per topic, the members subscribed to it (by member id) take
/// consecutive ranges, the first ones one partition more when the count does not divide. Members
/// with the same subscription thus get the same partition numbers of every topic, which joins of
/// co-partitioned topics rely on.
enum RangeAssignor {
    static func assign(_ members: [ServerAssignor.Member], partitionCounts: [String: Int32]) -> [String: PartitionAssignment] {
        let ordered = members.sorted { ($0.instanceId ?? $0.memberId, $0.memberId) < ($1.instanceId ?? $1.memberId, $1.memberId) }
        var result: [String: PartitionAssignment] = Dictionary(uniqueKeysWithValues: ordered.map { ($0.memberId, [:]) })
        let topics = Set(ordered.flatMap(\.topics)).compactMap { t in partitionCounts[t].map { (t, $0) } }
        for (topic, count) in topics {
            let subscribers = ordered.filter { $0.topics.contains(topic) }
            guard !subscribers.isEmpty else { continue }
            let share = Int(count) / subscribers.count
            let extra = Int(count) % subscribers.count
            var next: Int32 = 0
            for (i, member) in subscribers.enumerated() {
                let n = share + (i < extra ? 1 : 0)
                guard n > 0 else { continue }
                result[member.memberId]![topic] = Set(next..<next + Int32(n))
                next += Int32(n)
            }
        }
        return result
    }
}
