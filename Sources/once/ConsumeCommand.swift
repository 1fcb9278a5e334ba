import ArgumentParser
import Foundation
import Logging
import OnceClient

/// `once consume TOPIC`: prints record values, one per line.
struct ConsumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract: "Print a topic's records to stdout, one value per line, in a kcat format or as JSON.",
        discussion: """
            Reads without a consumer group unless --group is given; then it joins the group, \
            reads what the group assigns from its committed offsets, and commits each record it \
            printed. Starts at the end of each partition unless --from-beginning or --offset is \
            given; with --exit, stops at the end offsets seen at start instead of waiting for more.
            """
    )

    enum Isolation: String, ExpressibleByArgument, CaseIterable {
        case readUncommitted = "read_uncommitted"
        case readCommitted = "read_committed"

        var level: IsolationLevel { self == .readCommitted ? .readCommitted : .readUncommitted }
    }

    /// Where reading starts in each partition; kcat's `-o` vocabulary.
    enum StartOffset: ExpressibleByArgument, Equatable {
        case beginning, end
        case absolute(Int64)
        /// This many records before the end (kcat's `-o -N`).
        case fromEnd(Int64)
        /// The first record at or after this time, in milliseconds since the epoch (`s@MS`).
        case timestamp(Int64)

        init?(argument: String) {
            switch argument {
            case "beginning": self = .beginning
            case "end": self = .end
            default:
                if argument.hasPrefix("s@"), let ms = Int64(argument.dropFirst(2)), ms >= 0 {
                    self = .timestamp(ms)
                } else if argument.hasPrefix("-"), let n = Int64(argument.dropFirst()), n > 0 {
                    self = .fromEnd(n)
                } else if let n = Int64(argument), n >= 0 {
                    self = .absolute(n)
                } else {
                    return nil
                }
            }
        }
    }

    @OptionGroup var client: ClientOptions

    @Argument(help: "Topic name")
    var topic: String

    @Flag(help: "Start at the earliest offset of each partition")
    var fromBeginning = false

    @Option(
        name: [.customShort("o"), .long], parsing: .unconditional,
        help: "Start at: beginning, end, OFFSET, -N (N before the end) or s@MILLISECONDS (first record at or after)")
    var offset: StartOffset?

    @Option(help: "Read only this partition (default: all)")
    var partition: Int?

    @Option(name: [.customLong("isolation"), .customLong("isolation-level")], help: "read_uncommitted or read_committed")
    var isolation: Isolation = .readUncommitted

    @Option(help: "Consume as a member of this consumer group, committing what was printed")
    var group: String?

    @Flag(help: "Stop at the end offsets captured at start")
    var exit = false

    @Option(help: "Stop after printing this many records")
    var maxMessages: Int?

    @Flag(help: "Print KEY<TAB>VALUE")
    var printKey = false

    @Option(name: [.customShort("f"), .long], help: "kcat format: %t %p %o %T %k %K %s %S %h %%, \\n \\t \\r")
    var format: String?

    @Flag(help: "Print each record as one JSON object per line")
    var json = false

    func validate() throws {
        if fromBeginning, offset != nil { throw ValidationError("--from-beginning and --offset cannot be combined") }
        if let partition, partition < 0 { throw ValidationError("--partition must not be negative") }
        if let maxMessages, maxMessages < 1 { throw ValidationError("--max-messages must be at least 1") }
        if [format != nil, json, printKey].filter({ $0 }).count > 1 {
            throw ValidationError("--format, --json and --print-key cannot be combined")
        }
        if let format {
            do { _ = try RecordFormat.parse(format) } catch { throw ValidationError("--format: \(error)") }
        }
        if group != nil, offset != nil || partition != nil {
            throw ValidationError("--group reads from the group's committed offsets; --offset and --partition do not apply")
        }
    }

    var recordFormat: RecordFormat {
        if json { return .json }
        if let format { return (try? RecordFormat.parse(format)) ?? .value(printKey: printKey) }
        return .value(printKey: printKey)
    }

    func run() async throws {
        try await client.withClient { client in
            let metadata = try await client.metadata(topics: [topic])
            let topicMetadata = try requireTopic(metadata, topic)
            var partitions = topicMetadata.partitions.map { TopicPartition(topic, $0.partition) }
            if let group {
                try await consumeInGroup(group, partitions: partitions, client: client)
                return
            }
            if let partition {
                guard partition < partitions.count else {
                    throw CommandFailure("topic '\(topic)' has \(partitions.count) partitions; --partition \(partition) does not exist")
                }
                partitions = [TopicPartition(topic, Int32(partition))]
            }
            try await consume(partitions, client: client)
        }
    }

    private func startPositions(_ partitions: [TopicPartition], client: KafkaClient) async throws -> [TopicPartition: Int64] {
        let level = isolation.level
        func all(_ spec: OffsetSpec) async throws -> [TopicPartition: Int64] {
            try await client.listOffsets(Dictionary(uniqueKeysWithValues: partitions.map { ($0, spec) }), isolation: level)
        }
        switch offset ?? (fromBeginning ? .beginning : .end) {
        case .beginning: return try await all(.earliest)
        case .end: return try await all(.latest)
        case .absolute(let n): return Dictionary(uniqueKeysWithValues: partitions.map { ($0, n) })
        case .fromEnd(let n):
            let starts = try await all(.earliest)
            return try await all(.latest).reduce(into: [:]) { result, entry in
                result[entry.key] = max(starts[entry.key] ?? 0, entry.value - n)
            }
        case .timestamp(let ms):
            // A time after the last record finds no offset (-1): start at the end, as Kafka's consumer does.
            let found = try await all(.timestamp(ms))
            let ends = try await all(.latest)
            return found.reduce(into: [:]) { result, entry in
                result[entry.key] = entry.value >= 0 ? entry.value : ends[entry.key]!
            }
        }
    }

    private func consume(_ partitions: [TopicPartition], client: KafkaClient) async throws {
        let level = isolation.level
        var positions = try await startPositions(partitions, client: client)
        let recordFormat = recordFormat
        var ends: [TopicPartition: Int64] = [:]
        if exit {
            ends = try await client.listOffsets(
                Dictionary(uniqueKeysWithValues: partitions.map { ($0, .latest) }), isolation: level)
            positions = positions.filter { $0.value < ends[$0.key]! }
        }

        let reader = RecordSetReader(isolation: level)
        var printed = 0
        var staleMetadata = false
        while !positions.isEmpty {
            if staleMetadata {
                // A leader moved or is being elected: back off briefly, then re-learn the routes.
                try await Task.sleep(for: .milliseconds(200))
                _ = try await client.metadata(topics: [topic])
                staleMetadata = false
            }
            let fetched = try await client.fetch(
                positions.sorted { $0.key.partition < $1.key.partition }.map { FetchPosition($0.key, offset: $0.value) },
                isolation: level)
            for partition in fetched.sorted(by: { $0.topicPartition.partition < $1.topicPartition.partition }) {
                let tp = partition.topicPartition
                guard let position = positions[tp] else { continue }
                if let error = partition.error {
                    if error.code == .offsetOutOfRange {
                        throw CommandFailure(
                            "offset \(position) is out of range for \(tp) (log start \(partition.logStartOffset), end \(partition.highWatermark))")
                    }
                    if error.isRetriable {
                        staleMetadata = true
                        continue
                    }
                    throw CommandFailure("fetching \(tp) failed: \(error)")
                }
                let batch = try reader.read(partition, from: position)
                let end = ends[tp]
                for record in batch.records {
                    if let end, record.offset >= end { break }
                    write(recordFormat.render(record))
                    printed += 1
                    if let maxMessages, printed >= maxMessages {
                        fflush(nil)
                        return
                    }
                }
                positions[tp] = batch.nextOffset
                if let end, batch.nextOffset >= end { positions[tp] = nil }
            }
            fflush(nil)
        }
    }

    private func consumeInGroup(_ group: String, partitions: [TopicPartition], client: KafkaClient) async throws {
        var configuration = ConsumerConfiguration(bootstrapServers: BootstrapServer.parseList(self.client.bootstrapServer)!)
        configuration.client = try self.client.clientConfiguration()
        configuration.groupId = group
        configuration.isolationLevel = isolation.level
        configuration.autoOffsetReset = fromBeginning ? .earliest : .latest
        // Commits are explicit, after printing, so a stop at --max-messages commits exactly what was printed.
        configuration.enableAutoCommit = false
        // Joins and rebalances are routine here; stdout is the records and stderr is for failures.
        var logger = Logger(label: "once.consume")
        logger.logLevel = .warning
        let consumer = try await KafkaConsumer.connect(configuration: configuration, logger: logger)
        do {
            try await readGroup(consumer, partitions: partitions, client: client)
            await consumer.close()
        } catch {
            await consumer.close()
            throw error
        }
    }

    private func readGroup(_ consumer: KafkaConsumer, partitions: [TopicPartition], client: KafkaClient) async throws {
        let recordFormat = recordFormat
        let ends = exit
            ? try await client.listOffsets(
                Dictionary(uniqueKeysWithValues: partitions.map { ($0, .latest) }), isolation: isolation.level)
            : [:]
        try await consumer.subscribe([topic])
        var printed = 0
        while true {
            let records = try await consumer.poll(timeout: .milliseconds(500))
            var next: [TopicPartition: Int64] = [:]
            for record in records {
                if let end = ends[record.topicPartition], record.offset >= end { continue }
                write(recordFormat.render(record))
                next[record.topicPartition] = record.offset + 1
                printed += 1
                if let maxMessages, printed >= maxMessages { break }
            }
            fflush(nil)
            if !next.isEmpty { try await consumer.commit(next) }
            if let maxMessages, printed >= maxMessages { return }
            if exit {
                let assignment = await consumer.assignment
                guard !assignment.isEmpty else { continue }
                var done = true
                for tp in assignment {
                    let end = ends[tp] ?? 0
                    if end > 0, await consumer.position(tp) ?? -1 < end { done = false }
                }
                if done { return }
            }
        }
    }

    private func write(_ text: String) {
        print(text, terminator: "")
    }
}
