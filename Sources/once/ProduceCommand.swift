import ArgumentParser
import Foundation
import OnceClient

/// `once produce TOPIC`: one record per stdin line, sent in batches.
struct ProduceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "produce",
        abstract: "Write stdin to a topic, one record per line.",
        discussion: """
            Keyed lines (with --key-separator) go to the partition Kafka's Java client would pick \
            (murmur2 of the key); unkeyed lines go to one partition per batch, chosen at random. \
            Lines are sent in batches of up to --batch-lines lines or 1 MiB.
            """
    )

    @OptionGroup var client: ClientOptions

    @Argument(help: "Topic name")
    var topic: String

    @Option(help: "Split each line at the first SEP into key and value")
    var keySeparator: String?

    @Option(help: "Write every record to this partition")
    var partition: Int?

    @Option(help: "Acknowledgements to wait for: all, -1, 0 or 1")
    var acks: String = "all"

    @Option(help: "Most lines per batch")
    var batchLines: Int = 1000

    /// Bytes of record payload per batch before it is sent; well under the usual 1 MB message limit.
    static let maxBatchBytes = 1024 * 1024

    func validate() throws {
        _ = try parsedAcks()
        if let keySeparator, keySeparator.isEmpty { throw ValidationError("--key-separator must not be empty") }
        if let partition, partition < 0 { throw ValidationError("--partition must not be negative") }
        guard batchLines > 0 else { throw ValidationError("--batch-lines must be positive") }
    }

    func parsedAcks() throws -> Int16 {
        switch acks {
        case "all", "-1": -1
        case "0": 0
        case "1": 1
        default: throw ValidationError("--acks must be all, -1, 0 or 1, got '\(acks)'")
        }
    }

    func run() async throws {
        let acks = try parsedAcks()
        try await client.withClient { client in
            let metadata = try await client.metadata(topics: [topic], allowAutoTopicCreation: true)
            let partitionCount = Int32(try requireTopic(metadata, topic).partitions.count)
            if let partition, partition >= partitionCount {
                throw CommandFailure("topic '\(topic)' has \(partitionCount) partitions; --partition \(partition) does not exist")
            }
            var batcher = LineBatcher(
                partitionCount: partitionCount, fixedPartition: partition.map { Int32($0) },
                keySeparator: keySeparator.map { Array($0.utf8) })
            while let line = readLine(strippingNewline: true) {
                batcher.add(line, timestamp: Int64(Date().timeIntervalSince1970 * 1000))
                if batcher.lineCount >= batchLines || batcher.byteCount >= Self.maxBatchBytes {
                    try await send(batcher.take(), client: client, acks: acks)
                }
            }
            if batcher.lineCount > 0 {
                try await send(batcher.take(), client: client, acks: acks)
            }
        }
    }

    private func send(_ records: [Int32: [ProducerRecord]], client: KafkaClient, acks: Int16) async throws {
        let byPartition = Dictionary(uniqueKeysWithValues: records.map { (TopicPartition(topic, $0.key), $0.value) })
        let results = try await client.produce(records: byPartition, acks: acks)
        if let failed = results.values.sorted(by: { $0.topicPartition.partition < $1.topicPartition.partition })
            .first(where: { $0.error != nil })
        {
            throw CommandFailure("producing to \(failed.topicPartition) failed: \(failed.error!)")
        }
    }
}

/// Collects stdin lines into per-partition record lists until a batch is due.
struct LineBatcher {
    let partitionCount: Int32
    let fixedPartition: Int32?
    let keySeparator: [UInt8]?
    private(set) var lineCount = 0
    private(set) var byteCount = 0
    private var records: [Int32: [ProducerRecord]] = [:]
    /// Unkeyed records stick to one partition per batch, as the Java client's default does.
    private var stickyPartition: Int32

    init(partitionCount: Int32, fixedPartition: Int32?, keySeparator: [UInt8]?) {
        self.partitionCount = partitionCount
        self.fixedPartition = fixedPartition
        self.keySeparator = keySeparator
        self.stickyPartition = Int32.random(in: 0..<partitionCount)
    }

    mutating func add(_ line: String, timestamp: Int64) {
        let bytes = Array(line.utf8)
        var key: [UInt8]? = nil
        var value = bytes
        if let separator = keySeparator, let at = bytes.firstRange(of: separator) {
            key = Array(bytes[..<at.lowerBound])
            value = Array(bytes[at.upperBound...])
        }
        let partition = fixedPartition
            ?? key.map { Partitioner.partition(forKey: $0, partitionCount: partitionCount) }
            ?? stickyPartition
        records[partition, default: []].append(ProducerRecord(key: key, value: value, timestamp: timestamp))
        lineCount += 1
        byteCount += value.count + (key?.count ?? 0)
    }

    mutating func take() -> [Int32: [ProducerRecord]] {
        defer {
            records = [:]
            lineCount = 0
            byteCount = 0
            stickyPartition = Int32.random(in: 0..<partitionCount)
        }
        return records
    }
}
