import ArgumentParser
import OnceClient

/// `once producers describe TOPIC`: the idempotent and transactional producers each partition's
/// leader is tracking (KIP-664), for checking what the broker will deduplicate.
struct ProducersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "producers",
        abstract: "Show the producers a topic's partitions track.",
        subcommands: [Describe.self]
    )

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List active producers per partition.")

        @OptionGroup var client: ClientOptions

        @Argument(help: "Topic name")
        var topic: String

        @Option(help: "Only this partition")
        var partition: Int32?

        func run() async throws {
            try await client.withClient { client in
                let metadata = try await client.metadata(topics: [topic])
                guard let meta = metadata.topics.first(where: { $0.name == topic }), meta.error == nil else {
                    throw CommandFailure("topic '\(topic)' does not exist")
                }
                let partitions = meta.partitions.map(\.partition).filter { partition == nil || $0 == partition }
                guard !partitions.isEmpty else { throw CommandFailure("topic '\(topic)' has no partition \(partition ?? -1)") }
                let producers = try await client.describeProducers(partitions.map { TopicPartition(topic, $0) })
                print("PARTITION\tPRODUCER-ID\tEPOCH\tLAST-SEQUENCE\tLAST-TIMESTAMP\tTXN-START-OFFSET")
                for p in partitions.sorted() {
                    for producer in producers[TopicPartition(topic, p)] ?? [] {
                        print("\(p)\t\(producer.producerId)\t\(producer.producerEpoch)\t\(producer.lastSequence)\t\(producer.lastTimestamp)\t\(producer.currentTransactionStartOffset)")
                    }
                }
            }
        }
    }
}
