/// The batches of one partition between closing and acknowledgement, and the sequence numbers
/// the idempotent producer gives them.
///
/// Kafka's broker accepts a producer's batches for a partition only in sequence order and
/// remembers the last five, which is why at most five may be in flight. When one fails
/// retriably, the ones sent after it fail too (OUT_OF_ORDER_SEQUENCE_NUMBER), so the queue stops
/// sending until every in-flight batch has answered, then resends the failed ones in their
/// original order with their original sequence numbers: the broker either appends them or
/// recognises them as duplicates. Pure state, no I/O, so the rules are unit-tested directly.
struct PartitionSendQueue: Sendable {
    struct Entry: Hashable, Sendable {
        /// Producer-wide creation order, which is also sequence order within the partition.
        var id: Int
        var recordCount: Int32
        /// Assigned on first send and kept across retries; nil until then or after a reset.
        var baseSequence: Int32?
        var attempts = 0
    }

    private(set) var queued: [Entry] = []
    private(set) var inFlight: [Entry] = []
    /// The sequence the next never-sent batch will get.
    private(set) var nextSequence: Int32 = 0
    /// Set by a retriable failure; sending resumes once nothing is in flight.
    private(set) var isDraining = false

    var isEmpty: Bool { queued.isEmpty && inFlight.isEmpty }
    var unacknowledged: Int { queued.count + inFlight.count }

    mutating func enqueue(id: Int, recordCount: Int32) {
        precondition(queued.last.map { $0.id < id } ?? true, "batches are enqueued in creation order")
        queued.append(Entry(id: id, recordCount: recordCount))
    }

    /// Whether a batch could go out now under `maxInFlight`.
    func canSend(maxInFlight: Int) -> Bool {
        !queued.isEmpty && !isDraining && inFlight.count < maxInFlight
    }

    /// Moves the oldest queued batch in flight, numbering it if it has no sequence yet.
    mutating func takeNext(maxInFlight: Int) -> Entry? {
        guard canSend(maxInFlight: maxInFlight) else { return nil }
        var entry = queued.removeFirst()
        if entry.baseSequence == nil {
            entry.baseSequence = nextSequence
            nextSequence = Self.advance(nextSequence, by: entry.recordCount)
        }
        entry.attempts += 1
        inFlight.append(entry)
        return entry
    }

    /// The broker acknowledged the batch.
    @discardableResult
    mutating func acknowledged(id: Int) -> Entry {
        let entry = removeInFlight(id)
        if inFlight.isEmpty { isDraining = false }
        return entry
    }

    /// The batch failed and will be sent again; everything still in flight must answer first.
    mutating func failedRetriably(id: Int) {
        let entry = removeInFlight(id)
        let index = queued.firstIndex { $0.id > entry.id } ?? queued.endIndex
        queued.insert(entry, at: index)
        isDraining = !inFlight.isEmpty
    }

    /// The batch failed for good (fatal error, delivery timeout). The sequence numbers after it
    /// are now a gap the broker would reject, so the producer must reset sequences (epoch bump).
    @discardableResult
    mutating func failedPermanently(id: Int) -> Entry {
        let entry = inFlight.contains { $0.id == id } ? removeInFlight(id) : queued.remove(at: queued.firstIndex { $0.id == id }!)
        if inFlight.isEmpty { isDraining = false }
        return entry
    }

    /// After an epoch bump or a new producer id, sequences restart at 0 for every batch not yet
    /// acknowledged, in creation order. Only valid with nothing in flight.
    mutating func resetSequences() {
        precondition(inFlight.isEmpty, "sequences are reset only once in-flight batches have answered")
        nextSequence = 0
        for i in queued.indices { queued[i].baseSequence = nil }
        isDraining = false
    }

    /// Whether `id` is the oldest batch not yet acknowledged: an OUT_OF_ORDER_SEQUENCE_NUMBER for
    /// it cannot be explained by an earlier batch failing, so the broker lost our state.
    func isOldestUnacknowledged(_ id: Int) -> Bool {
        let oldest = (inFlight.map(\.id) + queued.map(\.id)).min()
        return oldest == id
    }

    /// Kafka sequences wrap from Int32.max to 0.
    static func advance(_ sequence: Int32, by count: Int32) -> Int32 {
        let next = Int64(sequence) + Int64(count)
        return next > Int64(Int32.max) ? Int32(next - Int64(Int32.max) - 1) : Int32(next)
    }

    private mutating func removeInFlight(_ id: Int) -> Entry {
        guard let index = inFlight.firstIndex(where: { $0.id == id }) else {
            preconditionFailure("batch \(id) is not in flight")
        }
        return inFlight.remove(at: index)
    }
}
