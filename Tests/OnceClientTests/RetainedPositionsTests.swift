import Testing

@testable import OnceClient

@Suite struct RetainedPositionsTests {
    let a0 = TopicPartition("a", 0), a1 = TopicPartition("a", 1), a2 = TopicPartition("a", 2)
    var held: RetainedPositions { RetainedPositions(memberId: "m-1", generationId: 4, positions: [a0: 120, a1: 7]) }

    @Test func partitionsKeptInTheNextGenerationContinueWhereTheyWere() {
        #expect(held.positions(memberId: "m-1", generationId: 5, assigned: [a0, a2]) == [a0: 120])
    }

    @Test func aNewMemberIdStartsFromTheCommittedOffsets() {
        #expect(held.positions(memberId: "m-2", generationId: 5, assigned: [a0, a1]).isEmpty)
        let anonymous = RetainedPositions(memberId: "", generationId: 4, positions: [a0: 1])
        #expect(anonymous.positions(memberId: "", generationId: 5, assigned: [a0]).isEmpty)
    }

    @Test func aMissedGenerationStartsFromTheCommittedOffsets() {
        // Someone else may have owned the partitions in generation 5 and committed past us.
        #expect(held.positions(memberId: "m-1", generationId: 6, assigned: [a0, a1]).isEmpty)
        #expect(held.positions(memberId: "m-1", generationId: 4, assigned: [a0, a1]).isEmpty)
    }
}
