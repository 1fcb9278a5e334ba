import Testing

@testable import OnceCore

/// Which records and batches log compaction keeps, over plain batches.
@Suite("CleaningPlan")
struct CleaningPlanTests {
    typealias Batch = CleaningPlan.Batch
    /// The clock of every pass here, and delete.retention.ms: a young tombstone gets 1100.
    static let now: Int64 = 1000
    static let retention: Int64 = 100
    static let young = now + retention

    static func outcomes(_ batches: [Batch]) -> [CleaningPlan.Outcome] {
        CleaningPlan.outcomes(batches, nowMs: now, deleteRetentionMs: retention)
    }

    static func plan(_ batches: [Batch], firstDirty: Int64, mapBytes: Int) -> CleaningPlan.Plan {
        CleaningPlan.plan(batches, firstDirty: firstDirty, mapBytes: mapBytes, nowMs: now, deleteRetentionMs: retention)
    }

    static func record(_ offset: Int64, _ key: String?, tombstone: Bool = false) -> CleaningPlan.Record {
        .init(offset: offset, key: key.map { Array($0.utf8) }, isTombstone: tombstone)
    }

    /// A batch of one record per (key, tombstone), at consecutive offsets from `base`.
    static func data(
        _ base: Int64, _ keys: [String?], producer: Int64 = -1, transactional: Bool = false, tombstones: Set<Int> = [],
        horizonPassed: Bool = false
    ) -> Batch {
        Batch(
            baseOffset: base, lastOffset: base + Int64(keys.count) - 1, producerId: producer, isTransactional: transactional,
            records: keys.enumerated().map { i, key in record(base + Int64(i), key, tombstone: tombstones.contains(i)) },
            deleteHorizonMs: horizonPassed ? now : nil)
    }

    static func marker(_ offset: Int64, producer: Int64, commit: Bool, horizonPassed: Bool = false) -> Batch {
        Batch(
            baseOffset: offset, lastOffset: offset, producerId: producer, isTransactional: true, kind: .marker(commit: commit),
            records: [], deleteHorizonMs: horizonPassed ? now : nil)
    }

    @Test func theLatestRecordOfEachKeySurvivesAndOlderOnesGo() {
        let outcomes = Self.outcomes([
            Self.data(0, ["a", "b", "a"]),
            Self.data(3, ["b"]),
            Self.data(4, ["c"]),
        ])
        #expect(outcomes == [.keepRecords([2]), .keep, .keep])
    }

    @Test func aBatchWithNothingLeftIsRemovedUnlessItIsItsProducersLast() {
        let outcomes = Self.outcomes([
            Self.data(0, ["a"], producer: 7),
            Self.data(1, ["a"], producer: 7),
            Self.data(2, ["a"], producer: 8),
            Self.data(3, ["a"]),
        ])
        // Producer 7's last batch stays, emptied, so its epoch and sequence survive a rebuild.
        #expect(outcomes == [.remove, .keepRecords([]), .keepRecords([]), .keep])
    }

    @Test func keylessRecordsAreRemoved() {
        #expect(Self.outcomes([Self.data(0, [nil, "a", nil])]) == [.keepRecords([1])])
    }

    @Test func aTombstoneStaysUntilTheDeleteHorizonPasses() {
        let young = Self.outcomes([Self.data(0, ["a"]), Self.data(1, ["a"], tombstones: [0])])
        // The first pass stamps the horizon on the tombstone's batch; a pass after it removes it.
        #expect(young == [.remove, .stampDeleteHorizon(Self.young)])
        let old = Self.outcomes([
            Self.data(0, ["a"], horizonPassed: true), Self.data(1, ["a", "b"], tombstones: [0], horizonPassed: true),
        ])
        #expect(old == [.remove, .keepRecords([1])])
    }

    @Test func anOlderTombstoneIsSupersededByANewerValue() {
        let outcomes = Self.outcomes([Self.data(0, ["a"], tombstones: [0]), Self.data(1, ["a"])])
        #expect(outcomes == [.remove, .keep])
    }

    @Test func abortedRecordsGoAndDoNotSupersedeCommittedOnes() {
        let outcomes = Self.outcomes([
            Self.data(0, ["a"]),
            Self.data(1, ["a", "b"], producer: 5, transactional: true),
            Self.marker(3, producer: 5, commit: false),
            Self.data(4, ["c"], producer: 6, transactional: true),
            Self.marker(5, producer: 6, commit: true),
            Self.data(6, ["z"], producer: 5),
            Self.data(7, ["z"], producer: 6),
        ])
        #expect(outcomes[0] == .keep, "the committed value of a stays: the newer one was aborted")
        #expect(outcomes[1] == .remove)
        #expect(outcomes[2] == .stampDeleteHorizon(Self.young), "its transaction has no record left: the marker goes after the horizon")
        #expect(outcomes[3] == .keep)
        #expect(outcomes[4] == .keep, "its transaction still has a record")
    }

    @Test func committedRecordsSupersedeOlderOnes() {
        let outcomes = Self.outcomes([
            Self.data(0, ["a"]),
            Self.data(1, ["a"], producer: 5, transactional: true),
            Self.marker(2, producer: 5, commit: true),
        ])
        #expect(outcomes == [.remove, .keep, .keep])
    }

    @Test func aCommitMarkerGoesOnceItsTransactionHasNoRecordAndTheHorizonPassed() {
        let batches = [
            Self.data(0, ["a"], producer: 5, transactional: true),
            Self.marker(1, producer: 5, commit: true, horizonPassed: true),
            Self.data(2, ["a"], producer: 5, transactional: true),
            Self.marker(3, producer: 5, commit: true, horizonPassed: true),
        ]
        // The second transaction's batch is producer 5's last, so it and its marker are pinned;
        // the first transaction's only record is superseded by the second's.
        #expect(Self.outcomes(batches) == [.remove, .remove, .keep, .keep])
        let young = batches.enumerated().map { i, b in
            var b = b
            if i == 1 { b.deleteHorizonMs = nil }
            return b
        }
        #expect(Self.outcomes(young) == [.remove, .stampDeleteHorizon(Self.young), .keep, .keep])
        let stamped = young.enumerated().map { i, b in
            var b = b
            if i == 1 { b.deleteHorizonMs = Self.young }
            return b
        }
        #expect(Self.outcomes(stamped) == [.remove, .keep, .keep, .keep], "the horizon has not passed")
    }

    @Test func anAbortMarkerGoesAsACommitMarkerDoesAndThePlanNamesIt() {
        let batches = [
            Self.data(0, ["a"], producer: 5, transactional: true),
            Self.marker(1, producer: 5, commit: false, horizonPassed: true),
            Self.data(2, ["b"], producer: 5, transactional: true),
            Self.marker(3, producer: 5, commit: true, horizonPassed: true),
        ]
        let plan = Self.plan(batches, firstDirty: 0, mapBytes: .max)
        #expect(plan.outcomes == [.remove, .remove, .keep, .keep])
        // The broker's aborted index must forget the transaction the marker at 1 ended, or a
        // consumer would drop b at 2 waiting for a marker that is gone.
        #expect(plan.removedAbortMarkers == [.init(producerId: 5, offset: 1)])
        var young = batches
        young[1].deleteHorizonMs = nil
        let first = Self.plan(young, firstDirty: 0, mapBytes: .max)
        #expect(first.outcomes == [.remove, .stampDeleteHorizon(Self.young), .keep, .keep])
        #expect(first.earliestDeleteHorizonMs == Self.young)
        #expect(first.removedAbortMarkers.isEmpty, "a stamped marker is still in the log")
    }

    @Test func anAbortMarkerClosingTheProducersLastBatchStays() {
        let plan = Self.plan([
            Self.data(0, ["a"], producer: 5, transactional: true),
            Self.marker(1, producer: 5, commit: false, horizonPassed: true),
        ], firstDirty: 0, mapBytes: .max)
        // A restart rebuilding producer 5 from the log needs both, or it would see the
        // transaction still open.
        #expect(plan.outcomes == [.keepRecords([]), .keep])
        #expect(plan.removedAbortMarkers.isEmpty)
    }

    @Test func anAbortMarkerWithARecordOfItsTransactionLeftStays() {
        // An aborted batch is removed whole, so only a pinned (emptied) one can remain; a commit
        // marker after it keeps the abort's ordering intact as well.
        let plan = Self.plan([
            Self.data(0, ["a"], producer: 5, transactional: true),
            Self.marker(1, producer: 5, commit: false, horizonPassed: true),
            Self.data(2, ["a"], producer: 6, transactional: true),
            Self.marker(3, producer: 6, commit: false, horizonPassed: true),
            Self.data(4, ["z"], producer: 6),
        ], firstDirty: 0, mapBytes: .max)
        #expect(plan.outcomes == [.keepRecords([]), .keep, .remove, .remove, .keep])
        #expect(plan.removedAbortMarkers == [.init(producerId: 6, offset: 3)])
    }

    @Test func aCommittedMarkerWhoseRecordsWereAllSupersededGoes() {
        let outcomes = Self.outcomes([
            Self.data(0, ["a"], producer: 5, transactional: true),
            Self.marker(1, producer: 5, commit: true, horizonPassed: true),
            Self.data(2, ["a"], producer: 6),
        ])
        // Producer 5's last data batch is pinned, and with it the marker that closes it.
        #expect(outcomes == [.keepRecords([]), .keep, .keep])
    }

    @Test func nothingAtOrAfterAnOpenTransactionIsTouchedOrCounted() {
        let outcomes = Self.outcomes([
            Self.data(0, ["a", "b"]),
            Self.data(2, ["a"], producer: 5, transactional: true),
            Self.data(3, ["b"]),
            Self.data(4, ["b"]),
        ])
        // Offset 2's transaction has no marker: from there on nothing changes, and b at 3 and 4
        // (which read_committed readers cannot see yet) does not supersede b at 1.
        #expect(outcomes == [.keep, .keep, .keep, .keep])
        let open = [Self.data(0, ["a"]), Self.data(1, ["a"], producer: 5, transactional: true)]
        #expect(Self.plan(open, firstDirty: 0, mapBytes: .max).end == 1)
        #expect(Self.plan([Self.data(0, ["a"])], firstDirty: 0, mapBytes: .max).end == nil)
    }

    @Test func anOpenTransactionDoesNotHideAnEarlierCommittedOne() {
        let outcomes = Self.outcomes([
            Self.data(0, ["a"]),
            Self.data(1, ["a"], producer: 5, transactional: true),
            Self.marker(2, producer: 5, commit: true),
            Self.data(3, ["a"], producer: 6, transactional: true),
        ])
        #expect(outcomes == [.remove, .keep, .keep, .keep])
    }

    /// The batches as a pass leaves them: what the storage engine writes for each outcome.
    static func apply(_ outcomes: [CleaningPlan.Outcome], to batches: [Batch]) -> [Batch] {
        zip(batches, outcomes).compactMap { batch, outcome in
            switch outcome {
            case .keep: return batch
            case .remove: return nil
            case .keepRecords(let kept, let horizon):
                var rewritten = batch
                rewritten.records = kept.map { batch.records[$0] }
                if let horizon { rewritten.deleteHorizonMs = horizon }
                return rewritten
            case .stampDeleteHorizon(let horizon):
                var stamped = batch
                stamped.deleteHorizonMs = horizon
                return stamped
            }
        }
    }

    /// Overwrites, tombstones young and old, keyless records, idempotent producers, committed and
    /// aborted transactions whose records the dirty section supersedes, and an open transaction.
    static let backlog: [Batch] = [
        data(0, ["a", "b", "c", "d"], producer: 1),
        data(4, ["e", "a", nil, "f"], producer: 1),
        data(8, ["b", "g"], producer: 3, transactional: true),
        data(10, ["h", "c"], producer: 4, transactional: true),
        marker(12, producer: 3, commit: true, horizonPassed: true),
        marker(13, producer: 4, commit: false, horizonPassed: true),
        data(14, ["d", "i", "j"], tombstones: [0], horizonPassed: true),
        data(17, ["e", "k", "a"], tombstones: [1]),
        data(20, ["b", "l", "m", "g"], producer: 1),
        data(24, ["n", "o"], producer: 5, transactional: true),
        data(26, ["p", "b"]),
        marker(28, producer: 5, commit: true, horizonPassed: true),
        data(29, ["g", "c", "q"], producer: 3),
        data(32, ["r", "a"], producer: 6, transactional: true),
        data(34, ["a", "s"], producer: 4),
    ]

    @Test func aTinyMapCleansInSeveralPassesToWhatOneUnboundedPassLeaves() throws {
        let unbounded = Self.plan(Self.backlog, firstDirty: 0, mapBytes: .max)
        #expect(unbounded.end == 32)
        let once = Self.apply(unbounded.outcomes, to: Self.backlog)
        // The map takes three keys at a time.
        let bound = 4 * OffsetMap.bytesPerEntry
        var log = Self.backlog
        var firstDirty: Int64 = 0
        var passes = 0
        while true {
            let plan = Self.plan(log, firstDirty: firstDirty, mapBytes: bound)
            #expect(plan.mapBytes <= bound)
            log = Self.apply(plan.outcomes, to: log)
            passes += 1
            let end = try #require(plan.end, "the open transaction at 32 stays dirty")
            #expect(end > firstDirty || end == 32)
            if end == firstDirty { break }
            firstDirty = end
            try #require(passes < 40)
        }
        #expect(passes > 5)
        #expect(log == once)
        // Spelled out: each key's latest committed value at its offset (f at 7 was never
        // overwritten), the old tombstone of d gone with d, the young tombstone of k kept, the
        // keyless record gone, the aborted transaction gone with its marker 13, the committed marker 12
        // gone (its records were all superseded), 28 kept (n and o survive), producer 1's emptied
        // first batch gone, and everything from the open transaction at 32 on untouched.
        let survivors = log.flatMap { $0.records.map(\.offset) }
        #expect(survivors == [7, 15, 16, 17, 18, 19, 21, 22, 24, 25, 26, 27, 29, 30, 31, 32, 33, 34, 35])
        #expect(log.map(\.baseOffset) == [4, 14, 17, 20, 24, 26, 28, 29, 32, 34])
    }

    @Test func aTombstoneBeyondAFullMapWaitsForThePassThatMapsItsKey() {
        let log = [Self.data(0, ["a", "b", "a"], tombstones: [2], horizonPassed: true)]
        // One key a pass: a at 0 fits, b does not. Removing the old tombstone now would leave a at
        // 0 as the latest value of a, a deleted key come back.
        let first = Self.plan(log, firstDirty: 0, mapBytes: OffsetMap.minimumBytes)
        #expect(first.end == 1)
        #expect(first.outcomes == [.keep])
        let second = Self.plan(log, firstDirty: 1, mapBytes: OffsetMap.minimumBytes)
        #expect(second.end == 2)
        #expect(second.outcomes == [.keep])
        // The pass that maps the tombstone takes a at 0 and, past the horizon, the tombstone too.
        let third = Self.plan(log, firstDirty: 2, mapBytes: OffsetMap.minimumBytes)
        #expect(third.end == nil)
        #expect(third.outcomes == [.keepRecords([1])])
    }

    /// The stages' state grows with the map, the transactions and the producers, never with the
    /// records: ten times the backlog, with the same producers and transactions, holds the same.
    @Test func theStagesHoldTheSameStateForTenTimesTheRecords() {
        func peak(records: Int) -> (scan: Int, filter: Int) {
            let keys = (0..<records).map { "k\($0 % 5000)" }
            var batches: [Batch] = []
            var offset: Int64 = 0
            for start in stride(from: 0, to: records, by: 100) {
                batches.append(Self.data(offset, Array(keys[start..<(start + 100)]), producer: Int64(start / 100 % 3)))
                offset += 100
            }
            // One aborted and one committed transaction, whatever the size.
            batches.append(Self.data(offset, ["x"], producer: 7, transactional: true))
            batches.append(Self.marker(offset + 1, producer: 7, commit: false))
            batches.append(Self.data(offset + 2, ["y"], producer: 8, transactional: true))
            batches.append(Self.marker(offset + 3, producer: 8, commit: true))
            var scan = CleaningPlan.TransactionScan(firstDirty: 0)
            for batch in batches { scan.read(batch, recordCount: batch.records.count) }
            var builder = CleaningPlan.MapBuilder(scan.transactions, firstDirty: 0, mapBytes: 1000 * OffsetMap.bytesPerEntry)
            for batch in batches where !builder.isDone { builder.read(batch) }
            var filter = CleaningPlan.Filter(builder, nowMs: Self.now, deleteRetentionMs: Self.retention)
            for batch in batches { _ = filter.decide(batch) }
            return (scan.peakBytes, filter.peakBytes)
        }
        let small = peak(records: 20_000)
        let large = peak(records: 200_000)
        #expect(small == large)
        #expect(large.filter <= 1000 * OffsetMap.bytesPerEntry + 256)
    }
}
