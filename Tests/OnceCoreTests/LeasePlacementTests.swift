import OnceCore
import Testing

@Suite("Lease placement")
struct LeasePlacementTests {
    static func partitions(_ n: Int) -> [TopicPartitionKey] {
        (0..<n).map { TopicPartitionKey("t", Int32($0)) } + [TopicPartitionKey("__consumer_offsets", 0)]
    }

    static func counts(_ a: [TopicPartitionKey: Int32]) -> [Int32: Int] {
        a.values.reduce(into: [:]) { $0[$1, default: 0] += 1 }
    }

    @Test("unheld partitions spread evenly, internal ones included")
    func spreadsEvenly() {
        let ps = Self.partitions(10)
        let a = LeasePlacement.assign(partitions: ps, liveBrokers: [3, 1, 2], holders: [:])
        #expect(Set(a.keys) == Set(ps))
        #expect(Self.counts(a).values.sorted() == [3, 4, 4])
        #expect(a == LeasePlacement.assign(partitions: ps.reversed(), liveBrokers: [2, 3, 1], holders: [:]))
    }

    @Test("a balanced assignment stays as it is")
    func stable() {
        let ps = Self.partitions(8)
        let first = LeasePlacement.assign(partitions: ps, liveBrokers: [1, 2, 3], holders: [:])
        #expect(LeasePlacement.assign(partitions: ps, liveBrokers: [1, 2, 3], holders: first) == first)
    }

    @Test("a joining broker takes only its share, each from a broker above its share")
    func joinMovesLittle() {
        let ps = Self.partitions(11)  // 12 partitions
        let before = LeasePlacement.assign(partitions: ps, liveBrokers: [1, 2], holders: [:])
        let after = LeasePlacement.assign(partitions: ps, liveBrokers: [1, 2, 3], holders: before)
        let moved = ps.filter { before[$0] != after[$0] }
        #expect(moved.count == 4)
        #expect(moved.allSatisfy { after[$0] == 3 })
        #expect(Self.counts(after) == [1: 4, 2: 4, 3: 4])
    }

    @Test("a dead holder's partitions go to the live brokers; nothing else moves")
    func deadHolder() {
        let ps = Self.partitions(8)  // 9 partitions
        let before = LeasePlacement.assign(partitions: ps, liveBrokers: [1, 2, 3], holders: [:])
        let after = LeasePlacement.assign(partitions: ps, liveBrokers: [1, 2], holders: before)
        for p in ps where before[p] != 3 { #expect(after[p] == before[p]) }
        #expect(Self.counts(after).values.sorted() == [4, 5])
    }

    @Test("one broker holding everything gives up all but its share when two join")
    func oneHolderAll() {
        let ps = Self.partitions(5)  // 6 partitions
        let holders = Dictionary(uniqueKeysWithValues: ps.map { ($0, Int32(3)) })
        let after = LeasePlacement.assign(partitions: ps, liveBrokers: [1, 2, 3], holders: holders)
        #expect(Self.counts(after) == [1: 2, 2: 2, 3: 2])
        #expect(ps.filter { after[$0] == 3 }.count == 2)
    }

    @Test("no live broker: nobody is assigned anything")
    func nobody() {
        #expect(LeasePlacement.assign(partitions: Self.partitions(3), liveBrokers: [], holders: [:]).isEmpty)
    }
}
