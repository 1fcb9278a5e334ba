import ArgumentParser
import Foundation
import Histogram
import OnceClient
import Synchronization

/// `once perf produce|consume`: throughput and latency of OnceClient against a cluster, with the
/// flags of Kafka's `kafka-producer-perf-test` and `kafka-consumer-perf-test`.
struct PerfCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perf",
        abstract: "Measure produce or consume throughput and latency with OnceClient.",
        subcommands: [PerfProduceCommand.self, PerfConsumeCommand.self, ClientScenarioCommand.self]
    )
}

/// Flags both perf commands take.
struct PerfOptions: ParsableArguments {
    @Option(
        name: .customLong("bootstrap-server"),
        help: "Broker address(es): HOST:PORT[,HOST:PORT...] (default: $ONCE_BROKERS, else 127.0.0.1:9092)")
    var bootstrapFlag: String?

    var bootstrapServer: String { ClientOptions.bootstrap(flag: bootstrapFlag) }

    @Option(help: "Topic to use")
    var topic: String

    @Option(help: "Records to produce or consume")
    var numRecords: Int

    @OptionGroup var connection: ConnectionProperties

    /// The perf tools' own client id, with the command line's security settings.
    func clientConfiguration() throws -> KafkaClientConfiguration {
        var configuration = KafkaClientConfiguration()
        configuration.clientId = "once-perf"
        try connection.apply(to: &configuration)
        return configuration
    }

    @Flag(help: "No progress bar on stderr")
    var noProgress = false

    @Option(help: "When stderr is not a terminal, a progress line at most this often, in ms (0: every update)")
    var progressIntervalMs: Int = 5000

    func validate() throws {
        guard BootstrapServer.parseList(bootstrapServer) != nil else {
            throw ValidationError("--bootstrap-server must be HOST:PORT[,HOST:PORT...], got '\(bootstrapServer)'")
        }
        guard numRecords > 0 else { throw ValidationError("--num-records must be positive") }
        guard progressIntervalMs >= 0 else { throw ValidationError("--progress-interval-ms must not be negative") }
    }

    func progressBar() -> ProgressBar {
        ProgressBar(total: numRecords, enabled: !noProgress, lineInterval: .milliseconds(progressIntervalMs))
    }

    var servers: [BootstrapServer] { BootstrapServer.parseList(bootstrapServer)! }
}

struct PerfProduceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Produce records as fast as allowed and report throughput and latency.",
        discussion: """
            Latency is measured per record from enqueue to acknowledgement. With \
            --transactional-id, records are written in transactions of --transaction-size and the \
            commit latency is reported too.
            """
    )

    @OptionGroup var options: PerfOptions

    @Option(help: "Bytes per record value")
    var recordSize: Int = 100

    @Option(help: "Records per second to aim for; -1 means unthrottled")
    var throughput: Int = -1

    @Option(help: "Acknowledgements: all, 1 or 0 (idempotence needs all)")
    var acks: String = "all"

    @Flag(inversion: .prefixedEnableDisable, help: "Idempotent producer")
    var idempotence = true

    @Option(help: "Write records in transactions with this transactional id")
    var transactionalId: String?

    @Option(help: "Records per transaction")
    var transactionSize: Int = 1000

    @Option(help: "Milliseconds a batch waits for more records")
    var lingerMs: Int = 5

    @Option(help: "Bytes per batch")
    var batchSize: Int = 1024 * 1024

    @Option(help: "none or gzip")
    var compression: String = "none"

    func validate() throws {
        guard ["none", "gzip"].contains(compression) else { throw ValidationError("--compression must be none or gzip") }
        guard recordSize >= 0 else { throw ValidationError("--record-size must not be negative") }
        guard transactionSize > 0 else { throw ValidationError("--transaction-size must be positive") }
        guard ["all", "-1", "1", "0"].contains(acks) else { throw ValidationError("--acks must be all, 1 or 0") }
        if idempotence || transactionalId != nil, !["all", "-1"].contains(acks) {
            throw ValidationError("an idempotent or transactional producer needs --acks all (or --disable-idempotence)")
        }
    }

    func run() async throws {
        var configuration = ProducerConfiguration(bootstrapServers: options.servers)
        configuration.client = try options.clientConfiguration()
        configuration.acks = acks == "1" ? .leader : acks == "0" ? .none : .all
        configuration.enableIdempotence = idempotence
        configuration.transactionalId = transactionalId
        configuration.linger = .milliseconds(lingerMs)
        configuration.batchSize = batchSize
        configuration.compression = compression == "gzip" ? .gzip : .none
        let producer: KafkaProducer
        do {
            producer = try await KafkaProducer.connect(configuration: configuration)
        } catch {
            printError(describe(error))
            throw ExitCode.failure
        }
        let stats = PerfStats()
        let progress = options.progressBar()
        let value = [UInt8](repeating: UInt8(ascii: "x"), count: recordSize)
        let clock = ContinuousClock()
        let start = clock.now
        var commitLatencies = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        // The records are identical, so one chunk is built once and handed over again and again.
        let fullChunk = Array(repeating: ProducerMessage(topic: options.topic, value: value), count: 256)
        do {
            var sent = 0
            while sent < options.numRecords {
                let inThisTransaction = transactionalId == nil ? options.numRecords : min(transactionSize, options.numRecords - sent)
                if transactionalId != nil { try await producer.beginTransaction() }
                var remaining = inThisTransaction
                while remaining > 0 {
                    // Unthrottled, records go to the producer in chunks: one call per chunk
                    // instead of per record, as librdkafka's perf tools batch their produce calls.
                    let chunk = throughput > 0 ? 1 : min(remaining, 256)
                    if throughput > 0 {
                        let due = start + .seconds(Double(sent) / Double(throughput))
                        if due > clock.now { try await Task.sleep(until: due, clock: clock) }
                    }
                    let enqueued = monotonicNanoseconds()
                    let messages = chunk == fullChunk.count ? fullChunk : Array(fullChunk.prefix(chunk))
                    try await producer.enqueue(contentsOf: messages) { _, result in
                        stats.record(result, latencyNanoseconds: monotonicNanoseconds() &- enqueued)
                        if progress.isEnabled { progress.advance(stats.completed) }
                    }
                    sent += chunk
                    remaining -= chunk
                }
                if transactionalId != nil {
                    let commitStart = clock.now
                    try await producer.commitTransaction()
                    _ = commitLatencies.record(UInt64((clock.now - commitStart).microseconds))
                }
            }
            await producer.flush()
        } catch {
            await producer.close()
            progress.finish()
            printError(describe(error))
            throw ExitCode.failure
        }
        let elapsed = clock.now - start
        await producer.close()
        progress.finish()
        let summary = stats.summary()
        let seconds = elapsed.seconds
        let rate = Double(summary.succeeded) / seconds
        print(String(
            format: "%d records sent, %.1f records/sec (%.2f MB/sec), %.2f ms avg latency, %.2f ms max latency.",
            summary.succeeded, rate, rate * Double(recordSize) / 1_048_576, summary.meanMs, summary.maxMs))
        print(String(
            format: "latency ms: p50 %.2f, p95 %.2f, p99 %.2f, p99.9 %.2f", summary.p50, summary.p95, summary.p99, summary.p999))
        if transactionalId != nil {
            print(String(
                format: "commit latency ms: p50 %.2f, p99 %.2f (%d transactions)",
                Double(commitLatencies.valueAtPercentile(50)) / 1000, Double(commitLatencies.valueAtPercentile(99)) / 1000,
                Int(commitLatencies.totalCount)))
        }
        if summary.failed > 0 {
            printError("\(summary.failed) records failed; first error: \(summary.firstError ?? "")")
            throw ExitCode.failure
        }
    }
}

struct PerfConsumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract: "Consume records from the beginning of a topic and report throughput.",
        discussion: "Reads every partition without a group unless --group is given."
    )

    @OptionGroup var options: PerfOptions

    @Option(help: "Consume as a member of this group (committing offsets)")
    var group: String?

    @Option(help: "read_uncommitted or read_committed")
    var isolation: ConsumeCommand.Isolation = .readUncommitted

    @Option(help: "Give up after this many seconds without reaching --num-records")
    var timeout: Int = 60

    func run() async throws {
        var configuration = ConsumerConfiguration(bootstrapServers: options.servers)
        configuration.client = try options.clientConfiguration()
        configuration.isolationLevel = isolation.level
        configuration.autoOffsetReset = .earliest
        configuration.groupId = group
        let consumer: KafkaConsumer
        do {
            consumer = try await KafkaConsumer.connect(configuration: configuration)
            if group != nil {
                try await consumer.subscribe([options.topic])
            } else {
                let client = try await KafkaClient.connect(
                    bootstrapServers: options.servers, configuration: configuration.client)
                let metadata = try await client.metadata(topics: [options.topic])
                await client.close()
                let topic = try requireTopic(metadata, options.topic)
                try await consumer.assign(topic.partitions.map { TopicPartition(options.topic, $0.partition) })
            }
        } catch {
            printError(describe(error))
            throw ExitCode.failure
        }
        let progress = options.progressBar()
        let clock = ContinuousClock()
        let start = clock.now
        var count = 0
        var bytes = 0
        let numRecords = options.numRecords
        let timeout = Duration.seconds(timeout)
        let reader = Task {
            var count = 0
            var bytes = 0
            var first: ContinuousClock.Instant?
            for try await record in consumer.records {
                if first == nil { first = clock.now }
                count += 1
                bytes += record.value?.count ?? 0
                if count % 1000 == 0 { progress.advance(count) }
                if count >= numRecords { break }
            }
            return (count, bytes, first)
        }
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            reader.cancel()
            await consumer.close()
        }
        var firstRecord: ContinuousClock.Instant?
        do {
            (count, bytes, firstRecord) = try await reader.value
        } catch {
            watchdog.cancel()
            await consumer.close()
            progress.finish()
            printError(Task.isCancelled || error is CancellationError ? "timed out" : describe(error))
            throw ExitCode.failure
        }
        watchdog.cancel()
        let elapsed = clock.now - start
        await consumer.close()
        progress.finish()
        let seconds = elapsed.seconds
        print(String(
            format: "%d records consumed in %.2f s, %.1f records/sec (%.2f MB/sec)",
            count, seconds, Double(count) / seconds, Double(bytes) / 1_048_576 / seconds))
        // A group's join (and its initial rebalance delay) can dwarf the reading itself; the
        // rate after the first record is the consumer's throughput.
        if let firstRecord {
            let waited = (firstRecord - start).seconds
            let reading = (start + elapsed - firstRecord).seconds
            let what = group == nil ? "first fetch" : "group join and first fetch"
            print(String(format: "first record after %.2f s (", waited) + what
                + String(format: "); then %.1f records/sec", reading > 0 ? Double(count) / reading : 0))
        }
        if count < numRecords {
            printError("timed out after \(count) of \(numRecords) records")
            throw ExitCode.failure
        }
    }
}

/// Latencies and outcomes of delivered records, shared with delivery callbacks.
final class PerfStats: Sendable {
    private struct State {
        var histogram = Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three)
        var succeeded = 0
        var failed = 0
        var firstError: String?
    }

    struct Summary {
        var succeeded: Int
        var failed: Int
        var firstError: String?
        var meanMs, maxMs, p50, p95, p99, p999: Double
    }

    private let state = Mutex(State())

    var completed: Int { state.withLock { $0.succeeded + $0.failed } }

    func record(_ result: Result<RecordMetadata, any Error>, latencyNanoseconds: UInt64) {
        state.withLock { state in
            switch result {
            case .success:
                state.succeeded += 1
                _ = state.histogram.record(latencyNanoseconds / 1000)
            case .failure(let error):
                state.failed += 1
                if state.firstError == nil { state.firstError = describe(error) }
            }
        }
    }

    func summary() -> Summary {
        state.withLock { s in
            let ms = { (us: UInt64) in Double(us) / 1000 }
            return Summary(
                succeeded: s.succeeded, failed: s.failed, firstError: s.firstError, meanMs: s.histogram.mean / 1000,
                maxMs: ms(s.histogram.max), p50: ms(s.histogram.valueAtPercentile(50)),
                p95: ms(s.histogram.valueAtPercentile(95)), p99: ms(s.histogram.valueAtPercentile(99)),
                p999: ms(s.histogram.valueAtPercentile(99.9)))
        }
    }
}

/// A one-line progress bar on stderr, redrawn at most ten times a second; when stderr is not a
/// terminal (CI logs, `2> file`), plain lines instead, since a redrawn bar there is one endless line.
final class ProgressBar: Sendable {
    private let total: Int
    private let enabled: Bool
    private let onTerminal: Bool
    private let lineInterval: Duration
    var isEnabled: Bool { enabled }
    private let lastDraw = Mutex<(ContinuousClock.Instant?, Int)>((nil, 0))

    init(total: Int, enabled: Bool, lineInterval: Duration = .seconds(5)) {
        self.total = total
        self.enabled = enabled
        self.onTerminal = isatty(STDERR_FILENO) != 0
        self.lineInterval = lineInterval
    }

    func advance(_ done: Int) {
        guard enabled else { return }
        let now = ContinuousClock.now
        let interval = onTerminal ? Duration.milliseconds(100) : lineInterval
        let draw = lastDraw.withLock { state -> Bool in
            if let last = state.0, now - last < interval, done < total || !onTerminal { return false }
            state = (now, done)
            return true
        }
        guard draw else { return }
        guard onTerminal else {
            let percent = done * 100 / max(total, 1)
            FileHandle.standardError.write(Data("progress: \(done)/\(total) records (\(percent)%)\n".utf8))
            return
        }
        let width = 40
        let filled = min(width, done * width / max(total, 1))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        FileHandle.standardError.write(Data("\r[\(bar)] \(done)/\(total)".utf8))
    }

    func finish() {
        guard enabled, onTerminal else { return }
        FileHandle.standardError.write(Data("\n".utf8))
    }
}

/// CLOCK_MONOTONIC in nanoseconds: per-record latency needs a clock read per acknowledgement,
/// and plain integers keep that cheaper than `ContinuousClock` instants and `Duration` maths.
func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}

extension Duration {
    var microseconds: Int64 { components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000 }
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// `once perf scenario ...`: small OnceClient programs the interop tests drive, so checks against
/// other clients exercise the library itself (transactions, groups, indexed records).
struct ClientScenarioCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenario",
        abstract: "OnceClient test scenarios for the interop suite.",
        shouldDisplay: false,
        subcommands: [ScenarioProduce.self, ScenarioConsume.self, ScenarioGroupMember.self, ScenarioService.self]
    )
}

/// Writes records valued `value-%09d` (keys `key-(i % 257)` with --keyed), as the interop
/// suite's other producers do, and prints `partition offset` per record.
struct ScenarioProduce: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "produce")

    @Option(name: .customLong("bootstrap-server")) var bootstrapServer: String
    @Option var topic: String
    @Option var count: Int
    @Option var start: Int = 0
    @Flag var keyed = false
    @Flag(inversion: .prefixedEnableDisable) var idempotence = true
    @Option var transactionalId: String?
    @Flag(help: "Abort the transaction instead of committing it") var abort = false
    @Flag var gzip = false
    @Option var batchSize: Int = 1024 * 1024

    func run() async throws {
        var configuration = ProducerConfiguration(bootstrapServers: BootstrapServer.parseList(bootstrapServer)!)
        configuration.enableIdempotence = idempotence
        configuration.transactionalId = transactionalId
        configuration.client.requestTimeout = .seconds(10)
        configuration.retryBackoff = .milliseconds(50)
        if gzip { configuration.compression = .gzip }
        configuration.batchSize = batchSize
        let producer = try await KafkaProducer.connect(configuration: configuration)
        let results = Mutex<[Int: RecordMetadata]>([:])
        let failures = Mutex<[String]>([])
        let messages = (start..<(start + count)).map { i in
            ProducerMessage(
                topic: topic, key: keyed ? Array("key-\(i % 257)".utf8) : nil,
                value: Array(String(format: "value-%09d", i).utf8))
        }
        let write = { @Sendable (target: KafkaProducer) async throws in
            for (i, message) in zip(start..., messages) {
                try await target.enqueue(message) { result in
                    switch result {
                    case .success(let metadata): results.withLock { $0[i] = metadata }
                    case .failure(let error): failures.withLock { $0.append("\(error)") }
                    }
                }
            }
        }
        if transactionalId != nil {
            try await producer.beginTransaction()
            try await write(producer)
            await producer.flush()
            if abort { try await producer.abortTransaction() } else { try await producer.commitTransaction() }
        } else {
            try await write(producer)
        }
        await producer.close()
        if let first = failures.withLock({ $0.first }) {
            printError("\(failures.withLock { $0.count }) records failed: \(first)")
            throw ExitCode.failure
        }
        let done = results.withLock { $0 }
        var out = ""
        for i in start..<(start + count) {
            guard let metadata = done[i] else { continue }
            out += "\(metadata.partition) \(metadata.offset)\n"
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }
}

/// Reads every partition from the beginning and prints `partition offset value` per record,
/// stopping after --count records or --idle-ms without any.
struct ScenarioConsume: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "consume")

    @Option(name: .customLong("bootstrap-server")) var bootstrapServer: String
    @Option var topic: String
    @Option var count: Int = Int.max
    @Option var isolation: ConsumeCommand.Isolation = .readUncommitted
    @Option var idleMs: Int = 3000

    func run() async throws {
        let servers = BootstrapServer.parseList(bootstrapServer)!
        var configuration = ConsumerConfiguration(bootstrapServers: servers)
        configuration.isolationLevel = isolation.level
        configuration.autoOffsetReset = .earliest
        configuration.fetchMaxWait = .milliseconds(200)
        let consumer = try await KafkaConsumer.connect(configuration: configuration)
        let client = try await KafkaClient.connect(bootstrapServers: servers)
        let topicMetadata = try requireTopic(try await client.metadata(topics: [topic]), topic)
        await client.close()
        try await consumer.assign(topicMetadata.partitions.map { TopicPartition(topic, $0.partition) })
        let lastRecord = Mutex(ContinuousClock.now)
        let idle = Duration.milliseconds(idleMs)
        let watchdog = Task {
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(100))
                if ContinuousClock.now - lastRecord.withLock({ $0 }) > idle {
                    await consumer.close()
                    return
                }
            }
        }
        var out = ""
        var seen = 0
        for try await record in consumer.records {
            lastRecord.withLock { $0 = .now }
            out += "\(record.topicPartition.partition) \(record.offset) \(String(decoding: record.value ?? [], as: UTF8.self))\n"
            seen += 1
            if seen >= count { break }
        }
        watchdog.cancel()
        await consumer.close()
        FileHandle.standardOutput.write(Data(out.utf8))
    }
}

/// Joins a group and prints `assigned P,P,...` after every rebalance (partition numbers of
/// --topic), reading records meanwhile. Leaves the group and exits when stdin closes.
struct ScenarioGroupMember: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "group-member")

    @Option(name: .customLong("bootstrap-server")) var bootstrapServer: String
    @Option var topic: String
    @Option var group: String
    @Option var assignor: PartitionAssignor = .range

    func run() async throws {
        var configuration = ConsumerConfiguration(bootstrapServers: BootstrapServer.parseList(bootstrapServer)!)
        configuration.groupId = group
        configuration.autoOffsetReset = .earliest
        configuration.heartbeatInterval = .milliseconds(300)
        configuration.sessionTimeout = .seconds(10)
        configuration.fetchMaxWait = .milliseconds(200)
        configuration.assignors = [assignor]
        let consumer = try await KafkaConsumer.connect(configuration: configuration)
        try await consumer.subscribe([topic])
        let events = Task {
            for await event in consumer.events {
                if case .assigned(let partitions) = event {
                    let list = partitions.map { "\($0.partition)" }.joined(separator: ",")
                    FileHandle.standardOutput.write(Data("assigned \(list)\n".utf8))
                }
            }
        }
        let reader = Task {
            for try await _ in consumer.records {}
        }
        // stdin closing is the signal to leave.
        await Task.detached { while readLine() != nil {} }.value
        reader.cancel()
        await consumer.close()
        _ = await events.result
    }
}

extension PartitionAssignor: ExpressibleByArgument {}
