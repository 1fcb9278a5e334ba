import ArgumentParser
import Foundation
import KafkaProtocol
import NIOCore
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

    @Option(name: [.customShort("H"), .customLong("header")], help: "Add header KEY=VALUE to every record; repeatable")
    var headers: [String] = []

    @Option(help: "Record timestamp in milliseconds since the epoch (default: the time each line is read)")
    var timestamp: Int64?

    @Option(help: "Compression codec: \(CompressionCodec.argumentNames)")
    var compression: CompressionCodec = .none

    @Option(help: "Parse each line with this pattern: %k key, %v value, %p partition, %T timestamp (e.g. '%k %v')")
    var format: String?

    @Flag(help: "Read JSON lines: {\"key\", \"value\", \"headers\": {K: V}, \"partition\", \"timestamp\"}, each optional but value")
    var json = false

    /// Bytes of record payload per batch before it is sent; well under the usual 1 MB message limit.
    static let maxBatchBytes = 1024 * 1024

    func validate() throws {
        _ = try parsedAcks()
        if let keySeparator, keySeparator.isEmpty { throw ValidationError("--key-separator must not be empty") }
        if let partition, partition < 0 { throw ValidationError("--partition must not be negative") }
        guard batchLines > 0 else { throw ValidationError("--batch-lines must be positive") }
        _ = try parsedHeaders()
        if [json, keySeparator != nil, format != nil].filter({ $0 }).count > 1 {
            throw ValidationError("--json, --format and --key-separator cannot be combined")
        }
        if let format {
            do { _ = try ProduceLineFormat(format) } catch { throw ValidationError("\(error)") }
        }
    }

    func parsedHeaders() throws -> [RecordHeader] {
        try headers.map { header in
            guard let equals = header.firstIndex(of: "="), equals != header.startIndex else {
                throw ValidationError("--header must be KEY=VALUE, got '\(header)'")
            }
            return RecordHeader(key: String(header[..<equals]), value: Array(header[header.index(after: equals)...].utf8))
        }
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
        let headers = try parsedHeaders()
        let codec = compression
        let lineFormat = try format.map { try ProduceLineFormat($0) }
        try await client.withClient { client in
            let metadata = try await client.metadata(topics: [topic], allowAutoTopicCreation: true)
            let partitionCount = Int32(try requireTopic(metadata, topic).partitions.count)
            if let partition, partition >= partitionCount {
                throw CommandFailure("topic '\(topic)' has \(partitionCount) partitions; --partition \(partition) does not exist")
            }
            var batcher = LineBatcher(
                partitionCount: partitionCount, fixedPartition: partition.map { Int32($0) },
                keySeparator: keySeparator.map { Array($0.utf8) }, headers: headers)
            var lineNumber = 0
            while let line = readLine(strippingNewline: true) {
                lineNumber += 1
                let now = timestamp ?? Int64(Date().timeIntervalSince1970 * 1000)
                if let lineFormat {
                    let fields = try lineFormat.parse(line, lineNumber: lineNumber)
                    if let p = fields.partition, p >= partitionCount {
                        throw CommandFailure("line \(lineNumber): topic '\(topic)' has \(partitionCount) partitions; partition \(p) does not exist")
                    }
                    batcher.add(
                        JSONLineRecord(key: fields.key, value: fields.value, partition: fields.partition,
                                       timestamp: fields.timestamp),
                        defaultTimestamp: now)
                } else if json {
                    let record = try JSONLineRecord(line, lineNumber: lineNumber)
                    if let p = record.partition, p >= partitionCount {
                        throw CommandFailure("line \(lineNumber): topic '\(topic)' has \(partitionCount) partitions; partition \(p) does not exist")
                    }
                    batcher.add(record, defaultTimestamp: now)
                } else {
                    batcher.add(line, timestamp: now)
                }
                if batcher.lineCount >= batchLines || batcher.byteCount >= Self.maxBatchBytes {
                    try await send(batcher.take(), client: client, acks: acks, codec: codec)
                }
            }
            if batcher.lineCount > 0 {
                try await send(batcher.take(), client: client, acks: acks, codec: codec)
            }
        }
    }

    private func send(
        _ records: [Int32: [ProducerRecord]], client: KafkaClient, acks: Int16, codec: CompressionCodec
    ) async throws {
        var batches: [TopicPartition: ByteBuffer] = [:]
        for (partition, list) in records {
            var builder = RecordBatchBuilder()
            for record in list {
                builder.append(key: record.key, value: record.value, headers: record.headers, timestamp: record.timestamp)
            }
            batches[TopicPartition(topic, partition)] = try builder.build(compression: codec)
        }
        let results = try await client.produce(batches, acks: acks)
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
    let headers: [RecordHeader]
    private(set) var lineCount = 0
    private(set) var byteCount = 0
    private var records: [Int32: [ProducerRecord]] = [:]
    /// Unkeyed records stick to one partition per batch, as the Java client's default does.
    private var stickyPartition: Int32

    init(partitionCount: Int32, fixedPartition: Int32?, keySeparator: [UInt8]?, headers: [RecordHeader] = []) {
        self.partitionCount = partitionCount
        self.fixedPartition = fixedPartition
        self.keySeparator = keySeparator
        self.headers = headers
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
        append(ProducerRecord(key: key, value: value, headers: headers, timestamp: timestamp), partition: nil)
    }

    /// A JSON line's own partition wins over --partition, which wins over the key's partition.
    mutating func add(_ line: JSONLineRecord, defaultTimestamp: Int64) {
        append(
            ProducerRecord(key: line.key, value: line.value, headers: headers + line.headers,
                           timestamp: line.timestamp ?? defaultTimestamp),
            partition: line.partition)
    }

    private mutating func append(_ record: ProducerRecord, partition explicit: Int32?) {
        let partition = explicit ?? fixedPartition
            ?? record.key.map { Partitioner.partition(forKey: $0, partitionCount: partitionCount) }
            ?? stickyPartition
        records[partition, default: []].append(record)
        lineCount += 1
        byteCount += (record.value?.count ?? 0) + (record.key?.count ?? 0)
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
