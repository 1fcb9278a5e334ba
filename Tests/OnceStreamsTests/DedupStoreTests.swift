import Foundation
import KafkaProtocol
@testable import OnceClient
import Testing

@testable import OnceStreams

private func record(_ partition: Int32, _ offset: Int64, key: String? = nil, id: String? = nil) -> ConsumerRecord {
    ConsumerRecord(
        topicPartition: TopicPartition("events", partition), offset: offset, timestamp: 0, key: key.map { Array($0.utf8) },
        value: Array("v\(offset)".utf8), headers: id.map { [RecordHeader(key: "event-id", value: Array($0.utf8))] } ?? [])
}

@Suite struct EventIdTests {
    @Test func idFromHeaderOrKey() {
        let r = record(0, 1, key: "k1", id: "e1")
        #expect(EventIdSource.header("event-id").eventId(of: r) == "e1")
        #expect(EventIdSource.key.eventId(of: r) == "k1")
        #expect(EventIdSource.header("other").eventId(of: r) == nil)
        #expect(EventIdSource.key.eventId(of: record(0, 2)) == nil)
    }

    @Test func nextOffsetsArePerPartitionMaximumPlusOne() {
        let events = [record(0, 5), record(1, 2), record(0, 3)].map { DedupEvent(id: "x", record: $0) }
        #expect(DedupEvent.nextOffsets(events) == [TopicPartition("events", 0): 6, TopicPartition("events", 1): 3])
    }
}

@Suite struct RedisDedupStoreScriptTests {
    @Test func flattensCommandsAfterTheClaim() {
        let arguments = RedisDedupStore.evalArguments(key: "p:e1", ttlSeconds: 60, commands: [["RPUSH", "l", "e1"], ["INCR", "n"]])
        #expect(arguments[0] == "EVAL")
        #expect(Array(arguments[2...]) == ["1", "p:e1", "60", "3", "RPUSH", "l", "e1", "2", "INCR", "n"])
    }
}

@Suite struct SQLiteDedupStoreTests {
    @Test func appliesEachEventOnceAndStoresOffsets() async throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dedup-\(UUID().uuidString).sqlite").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteDedupStore(path: path)
        try store.database.execute("CREATE TABLE effects (event_id TEXT)")
        let first = [record(0, 0, id: "a"), record(0, 1, id: "b"), record(0, 2, id: "a")].map {
            DedupEvent(id: EventIdSource.header("event-id").eventId(of: $0)!, record: $0)
        }
        let applied = try await store.process(first, group: "g") { event, db in
            try db.execute("INSERT INTO effects VALUES (?)", [.text(event.id)])
        }
        #expect(applied == 2)
        let again = try await store.process([DedupEvent(id: "b", record: record(0, 3))], group: "g") { event, db in
            try db.execute("INSERT INTO effects VALUES (?)", [.text(event.id)])
        }
        #expect(again == 0)
        #expect(try store.database.execute("SELECT event_id FROM effects ORDER BY event_id") == [[.text("a")], [.text("b")]])
        #expect(try await store.storedOffsets(group: "g") == [TopicPartition("events", 0): 4])
        // Another group has its own memory of what it processed.
        #expect(try await store.process([DedupEvent(id: "a", record: record(0, 0))], group: "h") { _, _ in } == 1)
    }

    @Test func aFailingEffectRollsBackIdsEffectsAndOffsets() async throws {
        struct Boom: Error {}
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("dedup-\(UUID().uuidString).sqlite").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try SQLiteDedupStore(path: path)
        try store.database.execute("CREATE TABLE effects (event_id TEXT)")
        await #expect(throws: Boom.self) {
            _ = try await store.process([DedupEvent(id: "a", record: record(0, 0)), DedupEvent(id: "b", record: record(0, 1))], group: "g") { event, db in
                try db.execute("INSERT INTO effects VALUES (?)", [.text(event.id)])
                if event.id == "b" { throw Boom() }
            }
        }
        #expect(try store.database.execute("SELECT count(*) FROM effects") == [[.integer(0)]])
        #expect(try await store.storedOffsets(group: "g").isEmpty)
        #expect(try await store.process([DedupEvent(id: "a", record: record(0, 0))], group: "g") { _, _ in } == 1)
    }
}
