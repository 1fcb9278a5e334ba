// once-postgres-dedup: the idempotent consumer writing to PostgreSQL, as a process tests can
// SIGKILL. Kept out of `once` so that its release build never compiles postgres-nio.
//
//   once-postgres-dedup BOOTSTRAP TOPIC GROUP POSTGRES_URL [EVENT_ID_HEADER]
import Foundation
import Logging
import OnceClient
import OnceStreams
import OnceStreamsPostgres
import PostgresNIO

let arguments = CommandLine.arguments
guard arguments.count >= 5, let servers = BootstrapServer.parseList(arguments[1]),
    let postgres = PostgresConnection.Configuration(url: arguments[4])
else {
    FileHandle.standardError.write(Data("usage: once-postgres-dedup BOOTSTRAP TOPIC GROUP POSTGRES_URL [HEADER]\n".utf8))
    exit(2)
}
var logger = Logger(label: "once.postgres-dedup")
logger.logLevel = .warning
var config = IdempotentConsumerConfiguration(bootstrapServers: servers, groupId: arguments[3], topics: [arguments[2]])
config.eventId = .header(arguments.count > 5 ? arguments[5] : "event-id")
config.consumer.sessionTimeout = .seconds(10)
config.consumer.heartbeatInterval = .seconds(1)

let store = try await PostgresDedupStore.connect(configuration: postgres, logger: logger)
try await store.connection.query("CREATE TABLE IF NOT EXISTS demo_events (event_id TEXT NOT NULL, value TEXT)", logger: logger)
let consumer = IdempotentConsumer(
    configuration: config, store: store, logger: logger,
    onBatch: { applied, duplicates, _ in FileHandle.standardOutput.write(Data("applied \(applied) duplicates \(duplicates)\n".utf8)) }
) { event, connection in
    let value = String(decoding: event.record.value ?? [], as: UTF8.self)
    try await connection.query("INSERT INTO demo_events VALUES (\(event.id), \(value))", logger: logger)
}
FileHandle.standardOutput.write(Data("ready\n".utf8))
try await consumer.run()
