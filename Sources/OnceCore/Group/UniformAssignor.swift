/// Kafka's default server assignor: spreads partitions so that member loads differ by at most one
/// (where subscriptions allow) while moving as few partitions as possible from their last owner,
/// because every move costs a revocation round trip in the cooperative protocol.
enum UniformAssignor {
    static func assign(_ members: [ServerAssignor.Member], partitionCounts: [String: Int32]) -> [String: PartitionAssignment] {
        let ordered = members.sorted { $0.memberId < $1.memberId }
        var owned: [String: [GroupPartition]] = Dictionary(uniqueKeysWithValues: ordered.map { ($0.memberId, []) })
        let subscribed = Set(ordered.flatMap(\.topics)).filter { partitionCounts[$0] != nil }
        let all = subscribed.sorted().flatMap { topic in (0..<partitionCounts[topic]!).map { GroupPartition(topic, $0) } }
        let topicsOf = Dictionary(uniqueKeysWithValues: ordered.map { ($0.memberId, $0.topics) })

        // Balanced share if every member could take every partition: the first `extra` members by
        // current load may hold one more than `quota`.
        let quota = ordered.isEmpty ? 0 : all.count / ordered.count
        var extra = ordered.isEmpty ? 0 : all.count % ordered.count

        // Keep what members already had, up to their share.
        var taken = Set<GroupPartition>()
        for member in ordered.sorted(by: { $0.current.partitionCount > $1.current.partitionCount }) {
            let keep = member.current.sortedPartitions.filter { p in
                member.topics.contains(p.topic) && p.partition < (partitionCounts[p.topic] ?? 0) && !taken.contains(p)
            }
            var limit = quota
            if keep.count > quota && extra > 0 {
                limit += 1
                extra -= 1
            }
            for p in keep.prefix(limit) {
                owned[member.memberId]!.append(p)
                taken.insert(p)
            }
        }

        // Hand out the rest, each to the least loaded member that subscribes to its topic.
        for p in all where !taken.contains(p) {
            guard let target = ordered.filter({ topicsOf[$0.memberId]!.contains(p.topic) })
                .min(by: { (owned[$0.memberId]!.count, $0.memberId) < (owned[$1.memberId]!.count, $1.memberId) })
            else { continue }
            owned[target.memberId]!.append(p)
        }

        // Subscriptions that differ can leave loads uneven; move single partitions from the most
        // to the least loaded eligible member while that narrows the gap. Each move lowers the sum
        // of squared loads, so this ends.
        var moved = true
        while moved {
            moved = false
            for donor in ordered.sorted(by: { owned[$0.memberId]!.count > owned[$1.memberId]!.count }) {
                let load = owned[donor.memberId]!.count
                for p in owned[donor.memberId]!.reversed() {
                    guard let receiver = ordered.filter({
                        $0.memberId != donor.memberId && topicsOf[$0.memberId]!.contains(p.topic)
                            && owned[$0.memberId]!.count + 1 < load
                    }).min(by: { (owned[$0.memberId]!.count, $0.memberId) < (owned[$1.memberId]!.count, $1.memberId) })
                    else { continue }
                    owned[donor.memberId]!.removeAll { $0 == p }
                    owned[receiver.memberId]!.append(p)
                    moved = true
                    break
                }
                if moved { break }
            }
        }
        return owned.mapValues { PartitionAssignment($0) }
    }
}
