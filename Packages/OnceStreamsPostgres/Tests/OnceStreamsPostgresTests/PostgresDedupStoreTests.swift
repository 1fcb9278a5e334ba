import Foundation
import Logging
@testable import OnceClient
import OnceStreams
import OnceStreamsPostgres
import PostgresNIO
import Testing

/// Runs against ONCE_TEST_POSTGRES_URL (scripts/start-services.sh). Skipped when it is unset,
/// except under ONCE_REQUIRE_SERVICES=1 (CI), where a missing server fails the test.
private let postgresURL = ProcessInfo.processInfo.environment["ONCE_TEST_POSTGRES_URL"]
private let required = ProcessInfo.processInfo.environment["ONCE_REQUIRE_SERVICES"] == "1"

@Suite struct PostgresDedupStoreTests {
    @Test func parsesConnectionURLs() throws {
        let config = try #require(PostgresConnection.Configuration(url: "postgres://u:p@127.0.0.1:5544/db"))
        #expect(config.username == "u" && config.password == "p" && config.database == "db")
        #expect(PostgresConnection.Configuration(url: "mysql://x") == nil)
    }

    @Test(.enabled(if: postgresURL != nil || required))
    func appliesEachEventOnceWithOffsetsInTheSameTransaction() async throws {
        let url = try #require(postgresURL, "ONCE_REQUIRE_SERVICES=1 but ONCE_TEST_POSTGRES_URL is unset")
        let store = try await PostgresDedupStore.connect(configuration: try #require(PostgresConnection.Configuration(url: url)))
        let logger = Logger(label: "test")
        let group = "test-\(UUID().uuidString)"
        try await store.connection.query("CREATE TABLE IF NOT EXISTS test_effects (grp TEXT, event_id TEXT)", logger: logger)
        func event(_ id: String, _ offset: Int64) -> DedupEvent {
            DedupEvent(id: id, record: ConsumerRecord(topicPartition: TopicPartition("t", 0), offset: offset, timestamp: 0, key: nil, value: nil, headers: []))
        }
        let effect: (DedupEvent, PostgresConnection) async throws -> Void = { event, connection in
            try await connection.query("INSERT INTO test_effects VALUES (\(group), \(event.id))", logger: logger)
        }
        #expect(try await store.process([event("a", 0), event("b", 1), event("a", 2)], group: group, effect: effect) == 2)
        #expect(try await store.process([event("b", 3)], group: group, effect: effect) == 0)
        let rows = try await store.connection.query("SELECT count(*)::int FROM test_effects WHERE grp = \(group)", logger: logger)
        var count = -1
        for try await (n) in rows.decode(Int.self) { count = n }
        #expect(count == 2)
        #expect(try await store.storedOffsets(group: group) == [TopicPartition("t", 0): 4])
        await store.close()
    }
}
