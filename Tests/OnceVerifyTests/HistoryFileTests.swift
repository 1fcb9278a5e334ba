import Foundation
import OnceCheck
import OnceVerify
import Testing

/// History files are how a run is kept and re-checked, and how hand-written histories reach
/// the checker: every event must survive the trip through JSON lines.
@Suite("History file")
struct HistoryFileTests {
    static let everyKind: [HistoryEvent] = [
        .producerInitialized(transactionalId: "t", instance: "a", producerId: 7, epoch: 3),
        .fenced(transactionalId: "t", instance: "a", producerId: 7, epoch: 3),
        .transactionBegan(transaction: "T1", transactionalId: "t", instance: "a", producerId: 7, epoch: 3),
        .recordSent(record: "r1", transaction: "T1", topic: "in", partition: 2, key: "k", value: "v", source: "s"),
        .recordSent(record: "p1", transaction: nil, topic: "in", partition: 0, key: nil, value: nil, source: nil),
        .recordAcknowledged(record: "r1", offset: 41),
        .offsetsSent(transaction: "T1", group: "g", topic: "in", partition: 2, offset: 42),
        .transactionEnded(transaction: "T1", outcome: .unknown),
        .readerStarted(reader: "reader", topic: "in", partition: 2, position: 0),
        .recordRead(reader: "reader", topic: "in", partition: 2, offset: 41, record: "r1"),
        .readerReachedEnd(reader: "reader", topic: "in", partition: 2, position: 43),
        .committedOffsetObserved(group: "g", topic: "in", partition: 2, offset: 42),
    ]

    @Test func everyEventSurvivesARoundTrip() throws {
        let data = HistoryFile.encode(Self.everyKind)
        #expect(String(decoding: data, as: UTF8.self).split(separator: "\n").count == Self.everyKind.count)
        #expect(try HistoryFile.decode(data) == Self.everyKind)
    }

    @Test func absentOptionalFieldsAndBlankLinesAreAccepted() throws {
        let text = """
            {"recordSent":{"record":"p1","topic":"in","partition":0}}

            {"transactionEnded":{"transaction":"T1","outcome":"aborted"}}
            """
        #expect(try HistoryFile.decode(Data(text.utf8)) == [
            .recordSent(record: "p1", transaction: nil, topic: "in", partition: 0, key: nil, value: nil, source: nil),
            .transactionEnded(transaction: "T1", outcome: .aborted),
        ])
    }

    @Test func aBadLineIsNamed() {
        let text = "{\"recordAcknowledged\":{\"record\":\"r1\",\"offset\":1}}\n{\"transactionEnded\":{\"outcome\":\"maybe\"}}\n"
        #expect {
            try HistoryFile.decode(Data(text.utf8))
        } throws: { error in
            (error as? HistoryFile.Malformed)?.line == 2
        }
    }
}
