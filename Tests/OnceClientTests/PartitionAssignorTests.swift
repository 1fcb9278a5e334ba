import OnceClient
import Testing

@Suite struct PartitionAssignorTests {
    @Test func rangeGivesContiguousRangesWithTheRemainderToTheFirstMembers() {
        let plan = PartitionAssignor.range.assign(
            subscriptions: ["c": ["t"], "a": ["t"], "b": ["t"]], partitionCounts: ["t": 7])
        #expect(plan["a"] == (0..<3).map { TopicPartition("t", $0) })
        #expect(plan["b"] == (3..<5).map { TopicPartition("t", $0) })
        #expect(plan["c"] == (5..<7).map { TopicPartition("t", $0) })
    }

    @Test func roundRobinDealsPartitionsAcrossTopics() {
        let plan = PartitionAssignor.roundRobin.assign(
            subscriptions: ["a": ["x", "y"], "b": ["x", "y"]], partitionCounts: ["x": 2, "y": 1])
        #expect(plan["a"] == [TopicPartition("x", 0), TopicPartition("y", 0)])
        #expect(plan["b"] == [TopicPartition("x", 1)])
    }

    @Test(arguments: PartitionAssignor.allCases)
    func everyPartitionIsAssignedExactlyOnce(assignor: PartitionAssignor) {
        let subscriptions = ["m1": ["a", "b"], "m2": ["a"], "m3": ["b", "c"]]
        let counts: [String: Int32] = ["a": 5, "b": 3, "c": 4]
        let plan = assignor.assign(subscriptions: subscriptions, partitionCounts: counts)
        let all = plan.values.flatMap { $0 }
        #expect(all.count == 12)
        #expect(Set(all).count == 12)
        for (member, partitions) in plan {
            #expect(partitions.allSatisfy { subscriptions[member]!.contains($0.topic) })
        }
    }

    @Test func membersWithoutPartitionsGetAnEmptyAssignment() {
        let plan = PartitionAssignor.range.assign(subscriptions: ["a": ["t"], "b": ["t"]], partitionCounts: ["t": 1])
        #expect(plan["b"] == [])
    }
}
