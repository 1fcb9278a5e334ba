import ArgumentParser
import OnceClient

/// `once topic create|list|describe|delete|add-partitions|alter-config|trim`.
struct TopicCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topic",
        abstract: "Create, list, describe, grow, reconfigure, trim and delete topics.",
        subcommands: [
            Create.self, List.self, Describe.self, Delete.self, AddPartitions.self, AlterConfig.self, Trim.self,
        ]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a topic.")

        @OptionGroup var client: ClientOptions

        @Argument(help: "Topic name")
        var name: String

        @Option(help: "Number of partitions")
        var partitions: Int = 1

        @Option(help: "Replicas per partition")
        var replicationFactor: Int = 1

        @Option(name: .customLong("config"), help: "Topic configuration KEY=VALUE (repeatable)")
        var configs: [String] = []

        func validate() throws {
            guard (1...Int(Int32.max)).contains(partitions) else {
                throw ValidationError("--partitions must be at least 1")
            }
            guard (1...Int(Int16.max)).contains(replicationFactor) else {
                throw ValidationError("--replication-factor must be at least 1")
            }
            _ = try parsedConfigs()
        }

        func parsedConfigs() throws -> [(name: String, value: String)] {
            try TopicCommand.keyValues(configs)
        }

        func run() async throws {
            let configs = try parsedConfigs()
            try await client.withClient { client in
                do {
                    try await client.createTopic(
                        name, partitions: Int32(partitions), replicationFactor: Int16(replicationFactor),
                        configs: configs)
                } catch let error as KafkaError {
                    throw CommandFailure("cannot create topic '\(name)': \(error)")
                }
                print("created topic \(name) with \(partitions) partition\(partitions == 1 ? "" : "s")")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List topic names, one per line.")

        @OptionGroup var client: ClientOptions

        @Flag(help: "Include internal topics such as __consumer_offsets")
        var includeInternal = false

        func run() async throws {
            try await client.withClient { client in
                let metadata = try await client.metadata()
                let names = metadata.topics
                    .filter { $0.error == nil && (includeInternal || !$0.isInternal) }
                    .map(\.name)
                    .sorted()
                for name in names { print(name) }
            }
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a topic's partitions, leaders, offsets and configuration.")

        @OptionGroup var client: ClientOptions

        @Argument(help: "Topic name")
        var name: String

        @Flag(help: "List every configuration entry, not only those set on the topic")
        var allConfigs = false

        func run() async throws {
            try await client.withClient { client in
                let topic = try requireTopic(try await client.metadata(topics: [name]), name)
                let partitions = topic.partitions.map { TopicPartition(name, $0.partition) }
                let starts = try await client.listOffsets(Dictionary(uniqueKeysWithValues: partitions.map { ($0, .earliest) }))
                let ends = try await client.listOffsets(Dictionary(uniqueKeysWithValues: partitions.map { ($0, .latest) }))
                let configs = try await client.describeTopicConfigs(name)

                print("Topic: \(name)\tTopicId: \(topic.topicId)\tPartitions: \(topic.partitions.count)")
                for partition in topic.partitions {
                    let tp = TopicPartition(name, partition.partition)
                    var line = "\tPartition: \(partition.partition)\tLeader: \(partition.leader)"
                    line += "\tReplicas: \(partition.replicas.map(String.init).joined(separator: ","))"
                    line += "\tIsr: \(partition.isr.map(String.init).joined(separator: ","))"
                    line += "\tStartOffset: \(starts[tp] ?? -1)\tEndOffset: \(ends[tp] ?? -1)"
                    if let error = partition.error { line += "\tError: \(error)" }
                    print(line)
                }
                let shown = configs.filter { allConfigs || $0.isTopicOverride }
                print("Configs:\(shown.isEmpty ? " (none set on the topic)" : "")")
                for entry in shown {
                    let value = entry.isSensitive ? "<sensitive>" : (entry.value ?? "null")
                    print("\t\(entry.name)=\(value)\(entry.isTopicOverride ? "" : " (default)")")
                }
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a topic and its data.")

        @OptionGroup var client: ClientOptions

        @Argument(help: "Topic name")
        var name: String

        func run() async throws {
            try await client.withClient { client in
                do {
                    try await client.deleteTopic(name)
                } catch let error as KafkaError where error.code == .unknownTopicOrPartition {
                    throw CommandFailure("topic '\(name)' does not exist")
                } catch let error as KafkaError {
                    throw CommandFailure("cannot delete topic '\(name)': \(error)")
                }
                print("deleted topic \(name)")
            }
        }
    }

    /// KEY=VALUE arguments of `--config` / `--set`.
    static func keyValues(_ entries: [String]) throws -> [(name: String, value: String)] {
        try entries.map { entry in
            guard let eq = entry.firstIndex(of: "="), eq != entry.startIndex else {
                throw ValidationError("expected KEY=VALUE, got '\(entry)'")
            }
            return (String(entry[..<eq]), String(entry[entry.index(after: eq)...]))
        }
    }
}
