/// Which live broker should lead each partition. Pure: the lease loop of every broker runs it over
/// the same inputs (live brokers, current live holders) and takes only what it is assigned, so no
/// two brokers reach for one lease, and leadership stays put unless balance needs a move.
///
/// The rule: every broker ends with `partitions / brokers` partitions, rounded down or up (the
/// remainder going to the brokers that already hold the most, then to the lowest node ids); a
/// holder keeps what it holds up to its share, and only what is unheld or above a share moves, to
/// the broker with the fewest (lowest node id on ties). Internal partitions count like any other.
public enum LeasePlacement {
    public static func assign(
        partitions: [TopicPartitionKey], liveBrokers: [Int32], holders: [TopicPartitionKey: Int32]
    ) -> [TopicPartitionKey: Int32] {
        let brokers = Array(Set(liveBrokers)).sorted()
        guard !brokers.isEmpty else { return [:] }
        let all = Array(Set(partitions)).sorted()
        let live = Set(brokers)
        var held: [Int32: [TopicPartitionKey]] = [:]
        for p in all { if let h = holders[p], live.contains(h) { held[h, default: []].append(p) } }

        let floor = all.count / brokers.count
        var extra = all.count % brokers.count
        // Those holding the most keep the larger shares, so the fewest leases move.
        let byHeld = brokers.sorted { (held[$0]?.count ?? 0, -$0) > (held[$1]?.count ?? 0, -$1) }
        var share: [Int32: Int] = [:]
        for b in byHeld {
            let wantsMore = (held[b]?.count ?? 0) > floor
            share[b] = floor + (extra > 0 && wantsMore ? 1 : 0)
            if extra > 0 && wantsMore { extra -= 1 }
        }
        for b in brokers where extra > 0 && share[b] == floor {
            share[b] = floor + 1
            extra -= 1
        }

        var result: [TopicPartitionKey: Int32] = [:]
        var count: [Int32: Int] = [:]
        var unplaced: [TopicPartitionKey] = []
        for b in brokers {
            let mine = held[b] ?? []
            for p in mine.prefix(share[b]!) { result[p] = b }
            count[b] = min(mine.count, share[b]!)
            unplaced += mine.dropFirst(share[b]!)
        }
        unplaced += all.filter { p in holders[p].map { !live.contains($0) } ?? true }
        for p in unplaced.sorted() {
            let target = brokers.filter { count[$0]! < share[$0]! }.min { (count[$0]!, $0) < (count[$1]!, $1) }!
            result[p] = target
            count[target]! += 1
        }
        return result
    }
}
