import OnceClient
import Testing

@testable import OnceStreams

@Suite struct KeyedStateStoreTests {
    let p0 = TopicPartition("in", 0)
    let p1 = TopicPartition("in", 1)

    @Test func pendingChangesShowUntilAbortDropsThem() {
        var store = KeyedStateStore()
        store.restore(p0, ["a": [1]])
        store.setValue([2], forKey: "a", in: p0)
        #expect(store.value(forKey: "a", in: p0) == [2])
        store.abort()
        #expect(store.value(forKey: "a", in: p0) == [1])
        #expect(store.pendingChanges.isEmpty)
    }

    @Test func commitFoldsInLastWritePerKeyAndDeletes() {
        var store = KeyedStateStore()
        store.setValue([1], forKey: "a", in: p0)
        store.setValue([2], forKey: "a", in: p0)
        store.setValue([9], forKey: "b", in: p1)
        store.setValue(nil, forKey: "b", in: p1)
        let changes = store.pendingChanges.sorted { $0.partition.partition < $1.partition.partition }
        #expect(changes.count == 2)
        #expect(changes[0].key == "a" && changes[0].value == [2])
        #expect(changes[1].key == "b" && changes[1].value == nil)
        store.commit()
        #expect(store.committedValues(in: p0) == ["a": [2]])
        #expect(store.value(forKey: "b", in: p1) == nil)
    }

    @Test func partitionsAreSeparate() {
        var store = KeyedStateStore()
        store.setValue([1], forKey: "k", in: p0)
        #expect(store.value(forKey: "k", in: p1) == nil)
        store.commit()
        #expect(store.isLoaded(p0) && !store.isLoaded(p1))
        store.unloadAll()
        #expect(!store.isLoaded(p0))
    }
}
