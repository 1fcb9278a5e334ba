import OnceCore
import Testing

@Suite("Producer state table")
struct ProducerStateTableTests {
    typealias Table = ProducerStateTable

    static func batch(
        _ pid: Int64 = 7, epoch: Int16 = 0, seq: Int32, count: Int32 = 1, txn: Bool = false, ts: Int64 = 1000
    ) -> Table.IncomingBatch {
        let last = seq > Int32.max - (count - 1) ? count - 1 - (Int32.max - seq) - 1 : seq + (count - 1)
        return .init(producerId: pid, producerEpoch: epoch, firstSequence: seq, lastSequence: last, isTransactional: txn, maxTimestamp: ts)
    }

    /// Checks and, when accepted, appends at `nextOffset`, as the broker does. Returns the decision.
    @discardableResult
    static func offer(_ table: inout Table, _ b: Table.IncomingBatch, nextOffset: inout Int64) -> Table.Decision {
        let decision = table.check(b)
        if decision == .append {
            let first = Int64(b.firstSequence)
            let last = Int64(b.lastSequence)
            let count: Int64 = last >= first ? last - first + 1 : Int64(Int32.max) - first + last + 2
            table.batchAppended(b, firstOffset: nextOffset, lastOffset: nextOffset + count - 1)
            nextOffset += count
        }
        return decision
    }

    @Test("a producer's first batch is appended, whatever its sequence (KIP-360)")
    func firstBatch() {
        var t = Table()
        var next: Int64 = 0
        #expect(Self.offer(&t, Self.batch(seq: 0, count: 3), nextOffset: &next) == .append)
        #expect(t.producers[7]?.epoch == 0)
        #expect(t.producers[7]?.lastSequence == 2)
        #expect(t.producers[7]?.batches == [.init(firstSequence: 0, lastSequence: 2, firstOffset: 0, lastOffset: 2, timestamp: 1000)])
        // A producer the broker has no state for (expired, or lost with old segments) may resume mid-stream.
        #expect(Self.offer(&t, Self.batch(8, seq: 42), nextOffset: &next) == .append)
    }

    @Test("in-order batches are appended")
    func inOrder() {
        var t = Table()
        var next: Int64 = 0
        for i in 0..<10 {
            #expect(Self.offer(&t, Self.batch(seq: Int32(i * 2), count: 2), nextOffset: &next) == .append)
        }
        #expect(t.producers[7]?.batches.count == Table.cachedBatchCount)
        #expect(t.producers[7]?.lastSequence == 19)
        #expect(next == 20)
    }

    @Test("a retry of each of the last five batches returns its original offsets", arguments: 0..<5)
    func duplicateOfEachCachedBatch(index: Int) {
        var t = Table()
        var next: Int64 = 100
        for i in 0..<7 { Self.offer(&t, Self.batch(seq: Int32(i * 3), count: 3), nextOffset: &next) }
        // Cached: batches 2...6 (sequences 6-8 ... 18-20).
        let cachedBatch = 2 + index
        let retry = Self.batch(seq: Int32(cachedBatch * 3), count: 3)
        let before = t
        let decision = t.check(retry)
        #expect(decision == .duplicate(.init(
            firstSequence: Int32(cachedBatch * 3), lastSequence: Int32(cachedBatch * 3 + 2),
            firstOffset: 100 + Int64(cachedBatch * 3), lastOffset: 100 + Int64(cachedBatch * 3 + 2), timestamp: 1000)))
        #expect(t == before, "checking changes nothing")
    }

    @Test("a retry older than the cached five is out of order")
    func duplicateTooOld() {
        var t = Table()
        var next: Int64 = 0
        for i in 0..<7 { Self.offer(&t, Self.batch(seq: Int32(i)), nextOffset: &next) }
        #expect(t.check(Self.batch(seq: 0)) == .reject(.outOfOrderSequence(expected: 7, received: 0)))
    }

    @Test("a sequence gap is out of order and appends nothing")
    func gap() {
        var t = Table()
        var next: Int64 = 0
        Self.offer(&t, Self.batch(seq: 0, count: 2), nextOffset: &next)
        #expect(Self.offer(&t, Self.batch(seq: 5), nextOffset: &next) == .reject(.outOfOrderSequence(expected: 2, received: 5)))
        #expect(next == 2)
        #expect(t.producers[7]?.lastSequence == 1)
    }

    @Test("a batch that overlaps but differs from a cached one is out of order")
    func overlapping() {
        var t = Table()
        var next: Int64 = 0
        Self.offer(&t, Self.batch(seq: 0, count: 4), nextOffset: &next)
        #expect(t.check(Self.batch(seq: 2, count: 4)) == .reject(.outOfOrderSequence(expected: 4, received: 2)))
    }

    @Test("a stale epoch is rejected; transactional producers are told they are fenced")
    func staleEpoch() {
        var t = Table()
        var next: Int64 = 0
        Self.offer(&t, Self.batch(epoch: 3, seq: 0), nextOffset: &next)
        #expect(t.check(Self.batch(epoch: 2, seq: 1)) == .reject(.staleEpoch(current: 3, transactional: false)))
        #expect(t.check(Self.batch(epoch: 2, seq: 1, txn: true)) == .reject(.staleEpoch(current: 3, transactional: true)))
        // Even a batch that matches a cached one under the old epoch is not a duplicate.
        #expect(t.check(Self.batch(epoch: 2, seq: 0)) == .reject(.staleEpoch(current: 3, transactional: false)))
    }

    @Test("an epoch bump restarts sequences at zero and clears the cache")
    func epochBump() {
        var t = Table()
        var next: Int64 = 0
        Self.offer(&t, Self.batch(epoch: 0, seq: 0, count: 5), nextOffset: &next)
        #expect(t.check(Self.batch(epoch: 1, seq: 5)) == .reject(.outOfOrderSequence(expected: 0, received: 5)))
        #expect(Self.offer(&t, Self.batch(epoch: 1, seq: 0), nextOffset: &next) == .append)
        #expect(t.producers[7]?.epoch == 1)
        #expect(t.producers[7]?.batches.count == 1)
        #expect(t.check(Self.batch(epoch: 1, seq: 1)) == .append)
    }

    @Test("sequences wrap from Int32.max to zero")
    func wrap() {
        var t = Table()
        var next: Int64 = 0
        Self.offer(&t, Self.batch(seq: Int32.max - 1, count: 2), nextOffset: &next)
        #expect(t.producers[7]?.lastSequence == Int32.max)
        #expect(t.check(Self.batch(seq: 0)) == .append)
        #expect(Table.nextSequence(after: Int32.max) == 0)
    }

    @Test("idle producers expire; ones with an open transaction do not")
    func expiry() {
        var t = Table()
        var next: Int64 = 0
        Self.offer(&t, Self.batch(1, seq: 0, ts: 1_000), nextOffset: &next)
        Self.offer(&t, Self.batch(2, seq: 0, ts: 5_000), nextOffset: &next)
        Self.offer(&t, Self.batch(3, seq: 0, txn: true, ts: 1_000), nextOffset: &next)
        #expect(t.expireProducers(idleBefore: 2_000) == [1])
        #expect(t.producers.keys.sorted() == [2, 3])
        #expect(t.producers[3]?.currentTransactionFirstOffset == 2)
        // An expired producer is unknown again: its next batch is accepted whatever the sequence.
        #expect(t.check(Self.batch(1, seq: 9)) == .append)
    }

    @Test("LSO and aborted index with interleaved transactions of several producers")
    func interleavedTransactions() throws {
        var t = Table()
        var next: Int64 = 0
        // offsets: 0 A, 1 B, 2 plain (no table entry), 3 A, 4 C, 5 B-abort, 6 A-commit, 7 C, ...
        Self.offer(&t, Self.batch(1, seq: 0, txn: true), nextOffset: &next)  // A @0
        Self.offer(&t, Self.batch(2, seq: 0, txn: true), nextOffset: &next)  // B @1
        next += 1  // a plain record @2
        #expect(t.firstUnstableOffset == 0)
        Self.offer(&t, Self.batch(1, seq: 1, txn: true), nextOffset: &next)  // A @3
        Self.offer(&t, Self.batch(3, seq: 0, txn: true), nextOffset: &next)  // C @4
        t.markerAppended(producerId: 2, producerEpoch: 0, commit: false, coordinatorEpoch: 0, offset: 5, timestamp: 0)
        next += 1
        #expect(t.firstUnstableOffset == 0, "A is still open from offset 0")
        t.markerAppended(producerId: 1, producerEpoch: 0, commit: true, coordinatorEpoch: 0, offset: 6, timestamp: 0)
        next += 1
        #expect(t.firstUnstableOffset == 4, "now C holds the LSO")
        #expect(t.abortedTransactions == [.init(producerId: 2, firstOffset: 1, lastOffset: 5)])
        // A fetch of [0, 4) must hear of B's abort; one from 6 on must not.
        #expect(t.abortedTransactions(from: 0, upTo: 4).map(\.producerId) == [2])
        #expect(t.abortedTransactions(from: 6, upTo: 10).isEmpty)
        // B starts again and aborts again; C commits.
        Self.offer(&t, Self.batch(2, seq: 1, txn: true), nextOffset: &next)  // B @7
        t.markerAppended(producerId: 3, producerEpoch: 0, commit: true, coordinatorEpoch: 0, offset: 8, timestamp: 0)
        t.markerAppended(producerId: 2, producerEpoch: 0, commit: false, coordinatorEpoch: 0, offset: 9, timestamp: 0)
        #expect(t.firstUnstableOffset == nil)
        #expect(t.abortedTransactions(from: 0, upTo: 10).map(\.firstOffset) == [1, 7])
        #expect(t.abortedTransactions(from: 6, upTo: 10).map(\.firstOffset) == [7])
        // Retention below offset 6 forgets the first abort only.
        t.removeAbortedTransactions(endingBefore: 6)
        #expect(t.abortedTransactions.map(\.lastOffset) == [9])
        // The snapshot carries the open-transaction state and the index.
        let copy = try ProducerStateSnapshot(decoding: ProducerStateSnapshot(offset: 10, table: t).encoded()).table
        #expect(copy == t)
    }

    /// Producer 2 aborts at 1...3, commits at 4...5 and aborts again at 6...7; producer 3 aborts at 8...9.
    static func aborts() -> Table {
        var t = Table()
        var next: Int64 = 0
        Self.offer(&t, Self.batch(2, seq: 0, count: 3, txn: true), nextOffset: &next)  // @0...2
        t.markerAppended(producerId: 2, producerEpoch: 0, commit: false, coordinatorEpoch: 0, offset: 3, timestamp: 0)
        next = 4
        Self.offer(&t, Self.batch(2, seq: 3, txn: true), nextOffset: &next)  // @4
        t.markerAppended(producerId: 2, producerEpoch: 0, commit: true, coordinatorEpoch: 0, offset: 5, timestamp: 0)
        next = 6
        Self.offer(&t, Self.batch(2, seq: 4, txn: true), nextOffset: &next)  // @6
        t.markerAppended(producerId: 2, producerEpoch: 0, commit: false, coordinatorEpoch: 0, offset: 7, timestamp: 0)
        next = 8
        Self.offer(&t, Self.batch(3, seq: 0, txn: true), nextOffset: &next)  // @8
        t.markerAppended(producerId: 3, producerEpoch: 0, commit: false, coordinatorEpoch: 0, offset: 9, timestamp: 0)
        return t
    }

    @Test("a removed abort marker takes its transaction out of the index, so the next committed one is not hidden")
    func abortMarkersRemoved() {
        var t = Self.aborts()
        #expect(t.abortedTransactions.map(\.lastOffset) == [3, 7, 9])
        // A read_committed fetch from 0 names the abort at 0...3: with its marker gone, a consumer
        // would drop producer 2's commit at 4 waiting for a marker of 2.
        #expect(t.abortedTransactions(from: 0, upTo: 10).map(\.firstOffset) == [0, 6, 8])
        let first = t.abortMarkersRemoved([.init(producerId: 2, offset: 3)])
        #expect(first)
        #expect(t.abortedTransactions(from: 0, upTo: 10).map(\.firstOffset) == [6, 8])
        // A marker of another producer at that offset, or a commit marker's offset, names nothing.
        let strangers = t.abortMarkersRemoved([.init(producerId: 3, offset: 7), .init(producerId: 2, offset: 5)])
        let none = t.abortMarkersRemoved([])
        #expect(!strangers && !none)
        let rest = t.abortMarkersRemoved([.init(producerId: 3, offset: 9), .init(producerId: 2, offset: 7)])
        #expect(rest)
        #expect(t.abortedTransactions.isEmpty)
        #expect(t.firstUnstableOffset == nil, "open transactions are not the index's business")
    }

    @Test("a snapshot's aborted transactions whose marker the log lost are dropped on load, in order")
    func staleSnapshotEntries() throws {
        let t = Self.aborts()
        var loaded = try ProducerStateSnapshot(decoding: ProducerStateSnapshot(offset: 10, table: t).encoded()).table
        let markersInLog: Set<Int64> = [7]
        var asked: [Int64] = []
        loaded.retainAbortedTransactions { asked.append($0.lastOffset); return markersInLog.contains($0.lastOffset) }
        #expect(asked == [3, 7, 9])
        #expect(loaded.abortedTransactions == [.init(producerId: 2, firstOffset: 6, lastOffset: 7)])
        var live = t
        live.abortMarkersRemoved([.init(producerId: 2, offset: 3), .init(producerId: 3, offset: 9)])
        #expect(loaded == live, "loading checks against the log to the state the live broker reached")
    }

    @Test("a snapshot plus a replay of the log tail equals the live table")
    func snapshotReplay() throws {
        var live = Table()
        var next: Int64 = 0
        var log: [(Table.IncomingBatch, Int64, Int64)] = []
        var rng = SplitMix64(seed: 42)
        var sequences: [Int64: Int32] = [:]
        var epochs: [Int64: Int16] = [:]
        var snapshot: ProducerStateSnapshot?
        for step in 0..<500 {
            let pid = Int64(rng.next() % 6)
            if rng.next() % 20 == 0 { epochs[pid, default: 0] += 1; sequences[pid] = 0 }
            let count = Int32(rng.next() % 4 + 1)
            let b = Self.batch(pid, epoch: epochs[pid, default: 0], seq: sequences[pid, default: 0], count: count, ts: Int64(step))
            let first = next
            if Self.offer(&live, b, nextOffset: &next) == .append {
                log.append((b, first, next - 1))
                sequences[pid, default: 0] += count
            }
            // Retries of recent batches are no-ops.
            if let (old, _, _) = log.last { #expect(live.check(old) != .append) }
            if step == 300 { snapshot = ProducerStateSnapshot(offset: next, table: live) }
        }
        let snap = try #require(snapshot)
        var rebuilt = try ProducerStateSnapshot(decoding: snap.encoded()).table
        #expect(rebuilt == snap.table)
        for (b, first, last) in log where first >= snap.offset {
            rebuilt.batchAppended(b, firstOffset: first, lastOffset: last)
        }
        #expect(rebuilt == live)
        // Replaying the whole log from nothing gives the same table too.
        var fromScratch = Table()
        for (b, first, last) in log { fromScratch.batchAppended(b, firstOffset: first, lastOffset: last) }
        #expect(fromScratch == live)
    }

    @Test("corrupt snapshots are refused")
    func corruptSnapshot() {
        var t = Table()
        var next: Int64 = 0
        Self.offer(&t, Self.batch(seq: 0), nextOffset: &next)
        let bytes = ProducerStateSnapshot(offset: 1, table: t).encoded()
        #expect(throws: ProducerStateSnapshot.DecodingError.self) { try ProducerStateSnapshot(decoding: Array(bytes.dropLast())) }
        #expect(throws: ProducerStateSnapshot.DecodingError.self) { try ProducerStateSnapshot(decoding: bytes + [0]) }
        var badVersion = bytes
        badVersion[0] = 99
        #expect(throws: ProducerStateSnapshot.DecodingError.self) { try ProducerStateSnapshot(decoding: badVersion) }
    }
}

@Suite("Producer id allocator")
struct ProducerIdAllocatorTests {
    @Test("reserves a block before handing out its first id, then hands out the rest freely")
    func blocks() {
        var a = ProducerIdAllocator(reservedUpTo: 0)
        #expect(a.allocate() == .reserveThenId(id: 0, reserveUpTo: ProducerIdAllocator.blockSize))
        for i in 1..<ProducerIdAllocator.blockSize { #expect(a.allocate() == .id(i)) }
        #expect(a.allocate() == .reserveThenId(id: 1000, reserveUpTo: 2000))
    }

    @Test("after a restart ids continue past the durable reservation, never repeating")
    func restart() {
        var a = ProducerIdAllocator(reservedUpTo: 0)
        var handedOut = Set<Int64>()
        var durable: Int64 = 0
        for _ in 0..<1500 {
            let allocation = a.allocate()
            if case .reserveThenId(_, let upTo) = allocation { durable = upTo }
            handedOut.insert(allocation.id)
        }
        var restarted = ProducerIdAllocator(reservedUpTo: durable)
        let next = restarted.allocate()
        #expect(!handedOut.contains(next.id))
        #expect(next == .reserveThenId(id: 2000, reserveUpTo: 3000))
    }

    @Test("a block granted by shared storage is handed out whole, then the next one is asked for")
    func grantedBlock() {
        var a = ProducerIdAllocator(grantedBlockAt: 7000)
        for i in 7000..<(7000 + ProducerIdAllocator.blockSize) { #expect(a.allocate() == .id(i)) }
        #expect(a.allocate() == .reserveThenId(id: 8000, reserveUpTo: 9000))
    }
}

