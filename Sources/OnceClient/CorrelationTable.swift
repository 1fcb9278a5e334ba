/// The requests a connection has sent and not yet seen answered, keyed by correlation id.
///
/// Kafka answers requests on one connection in the order they were sent, so a response whose id
/// is not the oldest outstanding one means the stream is out of step; `complete` reports that
/// instead of silently matching, and the connection is then closed.
struct CorrelationTable<Value> {
    private var order: [Int32] = []
    private var head = 0
    private var values: [Int32: Value] = [:]

    var isEmpty: Bool { values.isEmpty }
    var count: Int { values.count }

    enum Completion {
        case matched(Value)
        /// The id is outstanding but older requests are still unanswered.
        case outOfOrder(expected: Int32)
        case unknown
    }

    mutating func register(_ id: Int32, _ value: Value) {
        precondition(values[id] == nil, "correlation id \(id) is already outstanding")
        values[id] = value
        order.append(id)
    }

    mutating func complete(_ id: Int32) -> Completion {
        skipRemoved()
        guard values[id] != nil else { return .unknown }
        let expected = order[head]
        guard expected == id else { return .outOfOrder(expected: expected) }
        head += 1
        compact()
        return .matched(values.removeValue(forKey: id)!)
    }

    /// Forgets one request, e.g. because it timed out; its response, if one still comes, is then
    /// `unknown`.
    mutating func remove(_ id: Int32) -> Value? {
        values.removeValue(forKey: id)
    }

    mutating func removeAll() -> [Value] {
        let remaining = order[head...].compactMap { values[$0] }
        values = [:]
        order = []
        head = 0
        return remaining
    }

    private mutating func skipRemoved() {
        while head < order.count, values[order[head]] == nil { head += 1 }
        compact()
    }

    private mutating func compact() {
        if head > 64, head * 2 > order.count {
            order.removeFirst(head)
            head = 0
        }
    }
}
