import Testing

@testable import OnceStorage

/// The trimming rule both in-memory engines share, on bare segments: the edges where a wrong
/// count would leave a partition without an active segment or keep one wholly below its start.
@Suite("Segment trimming rule")
struct SegmentTrimmingTests {
    struct Segment: TrimmableSegment, Equatable {
        var baseOffset: Int64
        var size = 0
        var firstAppendMs: Int64?
        var lastAppendMs: Int64 = 0
        var stats: SegmentPolicy.Stats { .init(sizeInBytes: size, maxTimestamp: -1, lastAppendMs: lastAppendMs) }

        init(baseOffset: Int64) { self.baseOffset = baseOffset }
        init(_ baseOffset: Int64, size: Int, appendedAt ms: Int64) {
            self.baseOffset = baseOffset
            self.size = size
            firstAppendMs = ms
            lastAppendMs = ms
        }
    }

    /// Segments at 0, 10 and 20 (active), each 100 bytes, appended at 1000, 2000 and 3000 ms.
    private func threeSegments() -> [Segment] {
        [Segment(0, size: 100, appendedAt: 1000), Segment(10, size: 100, appendedAt: 2000), Segment(20, size: 100, appendedAt: 3000)]
    }

    @Test func dropKeepsTheSegmentHoldingTheOffsetAndTheActiveOne() {
        var segments = threeSegments()
        #expect(SegmentPolicy.dropSegments(&segments, below: 15) == 1)
        #expect(segments.map(\.baseOffset) == [10, 20])
        #expect(SegmentPolicy.dropSegments(&segments, below: .max) == 1)
        #expect(segments.map(\.baseOffset) == [20])
    }

    @Test func advancingToTheEndReplacesTheActiveSegmentWithAnEmptyOne() {
        var segments = threeSegments()
        SegmentPolicy.advanceStart(&segments, to: 30, logEnd: 30)
        #expect(segments == [Segment(baseOffset: 30)])
    }

    @Test func advancingInsideTheActiveSegmentKeepsIt() {
        var segments = threeSegments()
        SegmentPolicy.advanceStart(&segments, to: 25, logEnd: 30)
        #expect(segments.map(\.baseOffset) == [20])
        #expect(segments[0].size == 100)
    }

    @Test func timeRetentionOfEverythingLeavesAnEmptyActiveSegmentAtTheEnd() throws {
        var segments = threeSegments()
        let config = try TopicConfig(overrides: ["retention.ms": "500", "segment.ms": "100000"])
        #expect(SegmentPolicy.applyRetention(&segments, logEnd: 30, config: config, nowMs: 10_000) == 3)
        #expect(segments == [Segment(baseOffset: 30)])
    }

    @Test func sizeRetentionNeverTakesTheActiveSegment() throws {
        var segments = threeSegments()
        let config = try TopicConfig(overrides: ["retention.bytes": "0", "segment.ms": "100000"])
        #expect(SegmentPolicy.applyRetention(&segments, logEnd: 30, config: config, nowMs: 3000) == 2)
        #expect(segments.map(\.baseOffset) == [20])
    }

    @Test func anAgedActiveSegmentRollsAtTheLogEnd() throws {
        var segments = threeSegments()
        let config = try TopicConfig(overrides: ["segment.ms": "1000"])
        SegmentPolicy.rollAgedActive(&segments, logEnd: 30, config: config, nowMs: 3500)
        #expect(segments.count == 3, "not aged yet")
        SegmentPolicy.rollAgedActive(&segments, logEnd: 30, config: config, nowMs: 4001)
        #expect(segments.map(\.baseOffset) == [0, 10, 20, 30])
    }
}
