import ArgumentParser
import Foundation
import OnceClient

/// `once consume TOPIC`: prints record values, one per line.
struct ConsumeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "consume",
        abstract: "Print a topic's records to stdout, one value per line.",
        discussion: """
            Reads without a consumer group. Starts at the end of each partition unless \
            --from-beginning or --offset is given; with --exit, stops at the end offsets seen at \
            start instead of waiting for more.
            """
    )

    enum Isolation: String, ExpressibleByArgument, CaseIterable {
        case readUncommitted = "read_uncommitted"
        case readCommitted = "read_committed"

        var level: IsolationLevel { self == .readCommitted ? .readCommitted : .readUncommitted }
    }

    @OptionGroup var client: ClientOptions

    @Argument(help: "Topic name")
    var topic: String

    @Flag(help: "Start at the earliest offset of each partition")
    var fromBeginning = false

    @Option(help: "Start at this offset in each partition read")
    var offset: Int64?

    @Option(help: "Read only this partition (default: all)")
    var partition: Int?

    @Option(help: "read_uncommitted or read_committed")
    var isolation: Isolation = .readUncommitted

    @Flag(help: "Stop at the end offsets captured at start")
    var exit = false

    @Option(help: "Stop after printing this many records")
    var maxMessages: Int?

    @Flag(help: "Print KEY<TAB>VALUE")
    var printKey = false

    func validate() throws {
        if fromBeginning, offset != nil { throw ValidationError("--from-beginning and --offset cannot be combined") }
        if let offset, offset < 0 { throw ValidationError("--offset must not be negative") }
        if let partition, partition < 0 { throw ValidationError("--partition must not be negative") }
        if let maxMessages, maxMessages < 1 { throw ValidationError("--max-messages must be at least 1") }
    }

    func run() async throws {
        try await client.withClient { client in
            let metadata = try await client.metadata(topics: [topic])
            let topicMetadata = try requireTopic(metadata, topic)
            var partitions = topicMetadata.partitions.map { TopicPartition(topic, $0.partition) }
            if let partition {
                guard partition < partitions.count else {
                    throw CommandFailure("topic '\(topic)' has \(partitions.count) partitions; --partition \(partition) does not exist")
                }
                partitions = [TopicPartition(topic, Int32(partition))]
            }
            try await consume(partitions, client: client)
        }
    }

    private func consume(_ partitions: [TopicPartition], client: KafkaClient) async throws {
        let level = isolation.level
        var positions: [TopicPartition: Int64]
        if let offset {
            positions = Dictionary(uniqueKeysWithValues: partitions.map { ($0, offset) })
        } else {
            let spec: OffsetSpec = fromBeginning ? .earliest : .latest
            positions = try await client.listOffsets(
                Dictionary(uniqueKeysWithValues: partitions.map { ($0, spec) }), isolation: level)
        }
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
                    output(record)
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

    private func output(_ record: ConsumerRecord) {
        let value = record.value.map { String(decoding: $0, as: UTF8.self) } ?? "null"
        if printKey {
            let key = record.key.map { String(decoding: $0, as: UTF8.self) } ?? "null"
            print("\(key)\t\(value)")
        } else {
            print(value)
        }
    }
}
