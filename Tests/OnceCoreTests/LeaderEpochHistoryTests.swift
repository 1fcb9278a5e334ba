import OnceCore
import Testing

@Suite("Leader epoch history")
struct LeaderEpochHistoryTests {
    typealias Entry = LeaderEpochHistory.Entry

    /// Epoch 0 wrote 0..<10, epoch 2 wrote 10..<25, epoch 5 writes from 25.
    static let history = LeaderEpochHistory([
        Entry(epoch: 0, startOffset: 0), Entry(epoch: 2, startOffset: 10), Entry(epoch: 5, startOffset: 25),
    ])

    @Test("a known epoch ends where the next one starts; the latest ends at the log end")
    func knownEpochs() {
        #expect(Self.history.endOffset(for: 0, logEndOffset: 40) == (0, 10))
        #expect(Self.history.endOffset(for: 2, logEndOffset: 40) == (2, 25))
        #expect(Self.history.endOffset(for: 5, logEndOffset: 40) == (5, 40))
    }

    @Test("an unknown epoch answers the largest smaller one and its end")
    func unknownEpochBetween() {
        #expect(Self.history.endOffset(for: 1, logEndOffset: 40) == (0, 10))
        #expect(Self.history.endOffset(for: 4, logEndOffset: 40) == (2, 25))
    }

    @Test("an epoch below the first answers itself and the first start offset, as Kafka does")
    func belowFirst() {
        let trimmed = LeaderEpochHistory([Entry(epoch: 3, startOffset: 7), Entry(epoch: 4, startOffset: 9)])
        #expect(trimmed.endOffset(for: 1, logEndOffset: 12) == (1, 7))
    }

    @Test("the undefined epoch, an epoch above the latest and an empty history carry no epoch")
    func undefined() {
        #expect(Self.history.endOffset(for: -1, logEndOffset: 40) == (-1, -1))
        #expect(Self.history.endOffset(for: 6, logEndOffset: 40) == (-1, -1))
        #expect(LeaderEpochHistory().endOffset(for: 0, logEndOffset: 40) == (-1, -1))
    }

    @Test("an epoch taken before the previous one wrote anything replaces it")
    func emptyEpochReplaced() {
        let history = LeaderEpochHistory([
            Entry(epoch: 0, startOffset: 0), Entry(epoch: 1, startOffset: 10), Entry(epoch: 2, startOffset: 10),
        ])
        #expect(history.entries == [Entry(epoch: 0, startOffset: 0), Entry(epoch: 2, startOffset: 10)])
        #expect(history.endOffset(for: 1, logEndOffset: 30) == (0, 10))
    }

    @Test("an older or repeated epoch changes nothing once a newer one began later")
    func monotonic() {
        var history = Self.history
        history.assign(epoch: 5, startOffset: 30)
        #expect(history == Self.history)
        history.assign(epoch: -1, startOffset: 30)
        #expect(history == Self.history)
        history.assign(epoch: 6, startOffset: 31)
        #expect(history.latestEpoch == 6)
        #expect(history.endOffset(for: 5, logEndOffset: 40) == (5, 31))
    }

    @Test("a log start past earlier epochs keeps the epoch that holds it, starting there")
    func truncatedFromStart() {
        let trimmed = Self.history.truncatedFromStart(12)
        #expect(trimmed.entries == [Entry(epoch: 2, startOffset: 12), Entry(epoch: 5, startOffset: 25)])
        #expect(trimmed.endOffset(for: 0, logEndOffset: 40) == (0, 12))
        #expect(trimmed.endOffset(for: 2, logEndOffset: 40) == (2, 25))
        #expect(Self.history.truncatedFromStart(0) == Self.history)
        #expect(Self.history.truncatedFromStart(30).entries == [Entry(epoch: 5, startOffset: 30)])
    }
}
