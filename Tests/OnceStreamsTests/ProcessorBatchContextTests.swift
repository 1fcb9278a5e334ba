import OnceClient
import Testing

@testable import OnceStreams

@Suite struct ProcessorBatchContextTests {
    let p0 = TopicPartition("in", 0), p1 = TopicPartition("in", 1)

    @Test func outputsAndStateChangesAreCollectedForTheTransaction() {
        let records = [
            ConsumerRecord(topicPartition: p0, offset: 5, key: Array("k".utf8), value: [1]),
            ConsumerRecord(topicPartition: p1, offset: 9, key: Array("k".utf8), value: [2]),
        ]
        var context = ProcessorBatchContext(records: records, state: KeyedStateStore())
        for record in context.records {
            context.send(ProducerMessage(topic: "out", key: record.key, value: record.value))
            context.setValue(record.value, forKey: "k", in: record.topicPartition)
        }
        #expect(context.outputs.map(\.value) == [[1], [2]])
        // State is per partition: the same key holds a value in each.
        #expect(context.value(forKey: "k", in: p0) == [1])
        #expect(context.value(forKey: "k", in: p1) == [2])
        #expect(context.state.pendingChanges.count == 2)
    }

    @Test func committedStateIsVisibleAndDeletionsAreChanges() {
        var state = KeyedStateStore()
        state.restore(p0, ["n": [3]])
        var context = ProcessorBatchContext(records: [], state: state)
        #expect(context.value(forKey: "n", in: p0) == [3])
        context.setValue(nil, forKey: "n", in: p0)
        #expect(context.value(forKey: "n", in: p0) == nil)
        #expect(context.state.pendingChanges.map(\.key) == ["n"])
    }
}
