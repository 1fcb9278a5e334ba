import Testing

@testable import OnceClient

@Suite struct CorrelationTableTests {
    @Test func matchesResponsesInSendOrder() {
        var table = CorrelationTable<String>()
        table.register(1, "a")
        table.register(2, "b")
        guard case .matched("a") = table.complete(1) else { Issue.record("1 should match"); return }
        guard case .matched("b") = table.complete(2) else { Issue.record("2 should match"); return }
        #expect(table.isEmpty)
    }

    @Test func reportsAResponseThatOvertakesAnOlderRequest() {
        var table = CorrelationTable<String>()
        table.register(1, "a")
        table.register(2, "b")
        guard case .outOfOrder(expected: 1) = table.complete(2) else {
            Issue.record("2 before 1 must be out of order")
            return
        }
        #expect(table.count == 2)
    }

    @Test func reportsUnknownIds() {
        var table = CorrelationTable<String>()
        table.register(1, "a")
        guard case .unknown = table.complete(9) else { Issue.record("9 was never sent"); return }
    }

    @Test func aRemovedRequestNoLongerBlocksLaterOnes() {
        var table = CorrelationTable<String>()
        table.register(1, "a")
        table.register(2, "b")
        #expect(table.remove(1) == "a")
        guard case .matched("b") = table.complete(2) else { Issue.record("2 should match"); return }
        guard case .unknown = table.complete(1) else { Issue.record("1 was removed"); return }
    }

    @Test func removeAllReturnsOutstandingInOrder() {
        var table = CorrelationTable<Int>()
        for id in 1...5 { table.register(Int32(id), id * 10) }
        _ = table.complete(1)
        #expect(table.removeAll() == [20, 30, 40, 50])
        #expect(table.isEmpty)
    }

    @Test func staysCorrectOverManyRequests() {
        var table = CorrelationTable<Int32>()
        var next: Int32 = 0
        for round in 0..<300 {
            for _ in 0..<(round % 5 + 1) {
                next += 1
                table.register(next, next)
            }
            while !table.isEmpty {
                let oldest = next - Int32(table.count) + 1
                guard case .matched(let value) = table.complete(oldest), value == oldest else {
                    Issue.record("round \(round): \(oldest) did not match")
                    return
                }
            }
        }
    }
}
