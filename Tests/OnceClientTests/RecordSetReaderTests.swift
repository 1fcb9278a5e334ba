import KafkaProtocol
import NIOCore
import OnceClient
import Testing

@Suite struct RecordSetReaderTests {
    private let tp = TopicPartition("t", 0)

    private func batch(
        at offset: Int64, values: [String], producerId: Int64 = -1, transactional: Bool = false
    ) -> ByteBuffer {
        RecordBatch.encode(
            records: values.map { Record(offsetDelta: 0, key: nil, value: Array($0.utf8)) },
            baseOffset: offset, baseTimestamp: 1_000, producerId: producerId, producerEpoch: producerId >= 0 ? 0 : -1,
            baseSequence: producerId >= 0 ? 0 : -1, isTransactional: transactional)
    }

    private func marker(at offset: Int64, commit: Bool, producerId: Int64) -> ByteBuffer {
        RecordBatch.encodeMarker(
            .marker(commit: commit, coordinatorEpoch: 0), producerId: producerId, producerEpoch: 0,
            baseOffset: offset, timestamp: 1_000)
    }

    private func fetched(_ parts: [ByteBuffer], aborted: [AbortedTransaction] = []) -> FetchedPartition {
        var records = ByteBuffer()
        for var part in parts { records.writeBuffer(&part) }
        return FetchedPartition(
            topicPartition: tp, error: nil, highWatermark: 100, lastStableOffset: 100, logStartOffset: 0,
            abortedTransactions: aborted, records: records)
    }

    private func values(_ records: FetchedRecords) -> [String] {
        records.records.map { String(decoding: $0.value ?? [], as: UTF8.self) }
    }

    @Test func readsRecordsWithAbsoluteOffsets() throws {
        let result = try RecordSetReader(isolation: .readUncommitted)
            .read(fetched([batch(at: 0, values: ["a", "b"]), batch(at: 2, values: ["c"])]), from: 0)
        #expect(values(result) == ["a", "b", "c"])
        #expect(result.records.map(\.offset) == [0, 1, 2])
        #expect(result.nextOffset == 3)
    }

    @Test func skipsRecordsBeforeTheFetchOffsetInsideTheFirstBatch() throws {
        let result = try RecordSetReader(isolation: .readUncommitted)
            .read(fetched([batch(at: 10, values: ["a", "b", "c"])]), from: 11)
        #expect(values(result) == ["b", "c"])
        #expect(result.nextOffset == 13)
    }

    @Test func leavesATruncatedTrailingBatchForTheNextFetch() throws {
        var partial = batch(at: 2, values: ["c", "d"])
        partial.moveWriterIndex(to: partial.writerIndex - 5)
        let result = try RecordSetReader(isolation: .readUncommitted)
            .read(fetched([batch(at: 0, values: ["a", "b"]), partial]), from: 0)
        #expect(values(result) == ["a", "b"])
        #expect(result.nextOffset == 2)
    }

    @Test func neverReturnsControlRecordsButStepsOverThem() throws {
        let result = try RecordSetReader(isolation: .readUncommitted).read(
            fetched([batch(at: 0, values: ["a"], producerId: 7, transactional: true), marker(at: 1, commit: true, producerId: 7)]),
            from: 0)
        #expect(values(result) == ["a"])
        #expect(result.nextOffset == 2)
    }

    @Test func readCommittedDropsAbortedTransactions() throws {
        let parts = [
            batch(at: 0, values: ["committed"], producerId: 1, transactional: true),
            batch(at: 1, values: ["aborted-1", "aborted-2"], producerId: 2, transactional: true),
            marker(at: 3, commit: true, producerId: 1),
            marker(at: 4, commit: false, producerId: 2),
            batch(at: 5, values: ["plain"]),
            batch(at: 6, values: ["later"], producerId: 2, transactional: true),
        ]
        let aborted = [AbortedTransaction(producerId: 2, firstOffset: 1)]
        let committed = try RecordSetReader(isolation: .readCommitted).read(fetched(parts, aborted: aborted), from: 0)
        // Producer 2's next transaction after its abort marker is not aborted.
        #expect(values(committed) == ["committed", "plain", "later"])
        #expect(committed.nextOffset == 7)

        let uncommitted = try RecordSetReader(isolation: .readUncommitted).read(fetched(parts, aborted: aborted), from: 0)
        #expect(values(uncommitted) == ["committed", "aborted-1", "aborted-2", "plain", "later"])
    }
}
