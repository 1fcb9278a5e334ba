import ArgumentParser
import Foundation
import KafkaProtocol
import Logging
import NIOPosix
import OnceBroker
import OnceClient
import OnceStreams
import ServiceLifecycle
import Synchronization

/// `once demo pipeline`: exactly-once processing shown surviving crashes; `processor` and
/// `dedup` are the child processes it and the tests SIGKILL.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Watch exactly-once processing survive crashes.",
        subcommands: [Pipeline.self, Processor.self, Dedup.self, Bench.self]
    )

    struct Pipeline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a broker, run a processor that is SIGKILLed a few times, and count the outputs.")
        @Option(help: "Input records") var records = 20_000
        @Option(help: "How many times the processor is killed") var kills = 3
        @Option(help: "Seed for the kill moments") var seed: UInt64 = 7
        @Option(help: "Use this broker instead of starting one (HOST:PORT)") var bootstrapServer: String?

        func run() async throws {
            let broker = try await DemoBroker.start(given: bootstrapServer, name: "once-demo")
            defer { broker.stop() }
            if bootstrapServer == nil { print("broker: started on \(broker.bootstrap) (data in \(broker.dataDirectory ?? "-"))") }
            let bootstrap = broker.bootstrap
            let servers = BootstrapServer.parseList(bootstrap)!
            let admin = try await connectWithRetry(servers)
            let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
            let input = "demo-input-\(suffix)", output = "demo-output-\(suffix)"
            try await admin.createTopic(input, partitions: 2)
            try await admin.createTopic(output, partitions: 2)

            let producer = try await KafkaProducer.connect(configuration: ProducerConfiguration(bootstrapServers: servers))
            for i in 0..<records {
                try await producer.enqueue(ProducerMessage(topic: input, key: "key-\(i % 50)", value: "\(i)")) { _ in }
            }
            await producer.flush()
            await producer.close()
            print("inputs: produced \(records) records to \(input)")

            let arguments = [
                "demo", "processor", "--bootstrap-server", bootstrap, "--input", input, "--output", output,
                "--group", "demo-group-\(suffix)", "--transactional-id", "demo-processor-\(suffix)",
                "--changelog", "demo-counts-\(suffix)",
            ]
            var rng = SeededGenerator(seed: seed)
            var child = try spawnSelf(arguments)
            for n in 1...max(1, kills) where kills > 0 {
                try await Task.sleep(for: .milliseconds(Int.random(in: 1_000...3_000, using: &rng)))
                kill(child.processIdentifier, SIGKILL)
                child.waitUntilExit()
                print("processor: SIGKILLed (\(n)/\(kills)), restarting")
                child = try spawnSelf(arguments)
            }
            let deadline = ContinuousClock.now + .seconds(180)
            var values: [String] = []
            while ContinuousClock.now < deadline {
                values = try await readCommitted(admin, topic: output, partitions: 2).map { String(decoding: $0.value ?? [], as: UTF8.self) }
                if values.count >= records { break }
                try await Task.sleep(for: .milliseconds(500))
            }
            try await Task.sleep(for: .seconds(1))
            values = try await readCommitted(admin, topic: output, partitions: 2).map { String(decoding: $0.value ?? [], as: UTF8.self) }
            kill(child.processIdentifier, SIGTERM)
            child.waitUntilExit()
            await admin.close()

            var seen = Set<Int>()
            var duplicates = 0
            for value in values {
                guard let index = Int(value.replacingOccurrences(of: "processed:", with: "")) else { continue }
                if !seen.insert(index).inserted { duplicates += 1 }
            }
            let missing = (0..<records).filter { !seen.contains($0) }.count
            print("inputs: \(records)  outputs: \(values.count)  duplicates: \(duplicates)  missing: \(missing)")
            if duplicates > 0 || missing > 0 { throw ExitCode.failure }
        }
    }

    struct Processor: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Copy INPUT to OUTPUT as 'processed:<value>' exactly once, counting keys.", shouldDisplay: false)
        @Option var bootstrapServer = "127.0.0.1:9092"
        @Option var input: String
        @Option var output: String
        @Option var group: String
        @Option var transactionalId: String
        @Option(help: "Changelog topic of the per-key counts") var changelog: String?
        @Option var commitRecords = 500
        @Option var commitMs = 100

        func run() async throws {
            var config = ProcessorConfiguration(
                bootstrapServers: BootstrapServer.parseList(bootstrapServer)!, groupId: group, inputTopics: [input],
                transactionalId: transactionalId)
            config.changelogTopic = changelog
            config.commitPolicy = CommitPolicy(maxRecords: commitRecords, maxInterval: .milliseconds(commitMs))
            let output = output
            var logger = Logger(label: "once.demo.processor")
            logger.logLevel = .warning
            let processor = ExactlyOnceProcessor(configuration: config, logger: logger, onCommit: { say("committed \($0)") }) { context in
                let value = String(decoding: context.record.value ?? [], as: UTF8.self)
                context.send(ProducerMessage(topic: output, partition: context.record.topicPartition.partition,
                    key: context.record.key, value: Array("processed:\(value)".utf8)))
                let key = String(decoding: context.record.key ?? [], as: UTF8.self)
                let count = Int(String(decoding: context.value(forKey: key) ?? [], as: UTF8.self)) ?? 0
                context.setValue(Array(String(count + 1).utf8), forKey: key)
            }
            say("ready")
            let group = ServiceGroup(services: [processor], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
            try await group.run()
        }
    }

    struct Dedup: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record each event of TOPIC once in SQLite or Redis.", shouldDisplay: false)
        @Option var bootstrapServer = "127.0.0.1:9092"
        @Option var topic: String
        @Option var group: String
        @Option(help: "sqlite or redis") var store: String
        @Option var sqlitePath = "once-dedup.sqlite"
        @Option(help: "HOST:PORT") var redis = "127.0.0.1:6379"
        @Option(help: "header:NAME or key") var eventId = "header:event-id"

        func run() async throws {
            var config = IdempotentConsumerConfiguration(
                bootstrapServers: BootstrapServer.parseList(bootstrapServer)!, groupId: group, topics: [topic])
            config.eventId = eventId == "key" ? .key : .header(String(eventId.dropFirst("header:".count)))
            config.consumer.sessionTimeout = .seconds(10)
            config.consumer.heartbeatInterval = .seconds(1)
            var logger = Logger(label: "once.demo.dedup")
            logger.logLevel = .warning
            let report: @Sendable (Int, Int, Int) -> Void = { applied, duplicates, _ in say("applied \(applied) duplicates \(duplicates)") }
            let service: any Service
            switch store {
            case "sqlite":
                let store = try SQLiteDedupStore(path: sqlitePath)
                try store.database.execute("CREATE TABLE IF NOT EXISTS demo_events (event_id TEXT NOT NULL, value TEXT)")
                service = IdempotentConsumer(configuration: config, store: store, logger: logger, onBatch: report) { event, db in
                    try db.execute("INSERT INTO demo_events VALUES (?, ?)",
                        [.text(event.id), .text(String(decoding: event.record.value ?? [], as: UTF8.self))])
                }
            case "redis":
                let parts = redis.split(separator: ":")
                let connection = try await RedisConnection.connect(host: String(parts[0]), port: Int(parts[1]) ?? 6379)
                let store = RedisDedupStore(connection: connection)
                let list = "once-demo:\(group):events"
                service = IdempotentConsumer(configuration: config, store: store, logger: logger, onBatch: report) { event, commands in
                    commands.append("RPUSH", list, event.id)
                }
            default:
                throw ValidationError("--store must be sqlite or redis")
            }
            say("ready")
            try await ServiceGroup(services: [service], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger).run()
        }
    }
}

extension DemoCommand {
    /// Throughput of the transactional processor by commit interval, against an at-least-once
    /// loop on the same broker in the same run, so the ratio is the cost of exactly-once.
    struct Bench: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Compare processor throughput per commit interval with an at-least-once loop.", shouldDisplay: false)
        @Option var records = 200_000
        @Option var recordSize = 100
        @Option(parsing: .upToNextOption, help: "Records per transaction, one run each") var commitRecords = [10, 100, 1_000]
        @Option(help: "Use this broker instead of starting one (HOST:PORT)") var bootstrapServer: String?

        func run() async throws {
            let broker = try await DemoBroker.start(given: bootstrapServer, name: "once-bench")
            defer { broker.stop() }
            let servers = BootstrapServer.parseList(broker.bootstrap)!
            let admin = try await connectWithRetry(servers)
            let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
            let input = "bench-input-\(suffix)"
            try await admin.createTopic(input, partitions: 2)
            let producer = try await KafkaProducer.connect(configuration: ProducerConfiguration(bootstrapServers: servers))
            let value = [UInt8](repeating: 0x61, count: recordSize)
            for i in 0..<records {
                try await producer.enqueue(ProducerMessage(topic: input, key: Array("key-\(i % 1_000)".utf8), value: value)) { _ in }
            }
            await producer.flush()
            await producer.close()
            print("input: \(records) records of \(recordSize) bytes in \(input) (2 partitions), broker \(broker.bootstrap)")

            let baseline = try await atLeastOnce(servers, admin: admin, input: input, suffix: suffix)
            print(benchRow("at-least-once", baseline, baseline))
            for n in commitRecords {
                let rate = try await exactlyOnce(servers, admin: admin, input: input, suffix: suffix, commitRecords: n)
                print(benchRow("exactly-once, \(n)/txn", rate, baseline))
            }
            await admin.close()
        }

        /// Consume, produce each record to the output, and commit the input offsets once the
        /// outputs of a poll are acknowledged: no transactions.
        private func atLeastOnce(_ servers: [BootstrapServer], admin: KafkaClient, input: String, suffix: String) async throws -> Double {
            let output = "bench-alo-\(suffix)"
            try await admin.createTopic(output, partitions: 2)
            let producer = try await KafkaProducer.connect(configuration: ProducerConfiguration(bootstrapServers: servers))
            var config = ConsumerConfiguration(bootstrapServers: servers)
            config.groupId = "bench-alo-\(suffix)"
            config.enableAutoCommit = false
            config.autoOffsetReset = .earliest
            let consumer = try await KafkaConsumer.connect(configuration: config)
            try await consumer.subscribe([input])
            let started = ContinuousClock.now
            var done = 0
            while done < records {
                let batch = try await consumer.poll(timeout: .milliseconds(200))
                guard !batch.isEmpty else { continue }
                var next: [TopicPartition: Int64] = [:]
                for record in batch {
                    try await producer.enqueue(
                        ProducerMessage(topic: output, partition: record.topicPartition.partition, key: record.key, value: record.value)
                    ) { _ in }
                    next[record.topicPartition] = record.offset + 1
                }
                await producer.flush()
                try await consumer.commit(next)
                done += batch.count
            }
            let elapsed = ContinuousClock.now - started
            await consumer.close()
            await producer.close()
            return Double(done) / benchSeconds(elapsed)
        }

        /// The transactional processor copying the input, `commitRecords` per transaction; the
        /// clock stops when the last input record's transaction has committed.
        private func exactlyOnce(
            _ servers: [BootstrapServer], admin: KafkaClient, input: String, suffix: String, commitRecords: Int
        ) async throws -> Double {
            let output = "bench-eos-\(commitRecords)-\(suffix)"
            try await admin.createTopic(output, partitions: 2)
            var config = ProcessorConfiguration(
                bootstrapServers: servers, groupId: "bench-eos-\(commitRecords)-\(suffix)", inputTopics: [input],
                transactionalId: "bench-eos-\(commitRecords)-\(suffix)")
            config.commitPolicy = CommitPolicy(maxRecords: commitRecords, maxInterval: .seconds(1))
            let committed = CommittedCount()
            var logger = Logger(label: "once.demo.bench")
            logger.logLevel = .warning
            let processor = ExactlyOnceProcessor(configuration: config, logger: logger, onCommit: { committed.add($0) }) { context in
                context.send(
                    ProducerMessage(
                        topic: output, partition: context.record.topicPartition.partition, key: context.record.key,
                        value: context.record.value))
            }
            let started = ContinuousClock.now
            let task = Task { try await processor.run() }
            while committed.value < records {
                try await Task.sleep(for: .milliseconds(5))
            }
            let elapsed = ContinuousClock.now - started
            task.cancel()
            _ = try? await task.value
            return Double(committed.value) / benchSeconds(elapsed)
        }
    }
}

private func benchRow(_ mode: String, _ rate: Double, _ baseline: Double) -> String {
    mode.padding(toLength: 24, withPad: " ", startingAt: 0) + String(format: "%10.0f records/s  %.2fx", rate, rate / baseline)
}

private func benchSeconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}

private final class CommittedCount: Sendable {
    private let count = Mutex(0)
    func add(_ n: Int) { count.withLock { $0 += n } }
    var value: Int { count.withLock { $0 } }
}

/// Unbuffered, so a parent reading our output sees each line before a SIGKILL.
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}

/// xorshift64*, so the kill moments replay for a seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
}

/// The broker a demo runs against: the one given, or one started in this process on a free
/// loopback port with a temporary data directory that `stop()` removes.
private struct DemoBroker {
    var bootstrap: String
    var dataDirectory: String?
    var task: Task<Void, any Error>?

    static func start(given: String?, name: String) async throws -> DemoBroker {
        if let given { return DemoBroker(bootstrap: given) }
        let port = try await freePort()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid())").path
        var config = BrokerConfig()
        config.dataDirectory = directory
        config.listeners = [.plaintext(HostPort(host: "127.0.0.1", port: port))]
        config.groupInitialRebalanceDelayMs = 0
        var logger = Logger(label: "once.demo.broker")
        logger.logLevel = .error
        let service = BrokerService(config: config, logger: logger)
        return DemoBroker(bootstrap: "127.0.0.1:\(port)", dataDirectory: directory, task: Task { try await service.run() })
    }

    func stop() {
        task?.cancel()
        if let dataDirectory { try? FileManager.default.removeItem(atPath: dataDirectory) }
    }
}

private func freePort() async throws -> Int {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress?.port ?? 0
    try await channel.close()
    return port
}

private func connectWithRetry(_ servers: [BootstrapServer]) async throws -> KafkaClient {
    var attempt = 0
    while true {
        do {
            return try await KafkaClient.connect(bootstrapServers: servers)
        } catch {
            attempt += 1
            if attempt > 50 { throw error }
            try await Task.sleep(for: .milliseconds(100))
        }
    }
}

private func spawnSelf(_ arguments: [String]) throws -> Process {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).standardizedFileURL
    if !FileManager.default.isExecutableFile(atPath: process.executableURL!.path) {
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    }
    process.arguments = arguments
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    return process
}

/// Every record of `topic` a read_committed consumer sees, up to the last stable offsets.
private func readCommitted(_ client: KafkaClient, topic: String, partitions: Int32) async throws -> [ConsumerRecord] {
    var all: [ConsumerRecord] = []
    let reader = RecordSetReader(isolation: .readCommitted)
    for p in 0..<partitions {
        let tp = TopicPartition(topic, p)
        let end = try await client.listOffsets([tp: .latest], isolation: .readCommitted)[tp] ?? 0
        var position = try await client.listOffsets([tp: .earliest])[tp] ?? 0
        while position < end {
            guard let fetched = try await client.fetch([FetchPosition(tp, offset: position)], isolation: .readCommitted).first
            else { break }
            let result = try reader.read(fetched, from: position)
            all.append(contentsOf: result.records.filter { $0.offset < end })
            if result.nextOffset <= position { break }
            position = result.nextOffset
        }
    }
    return all
}
