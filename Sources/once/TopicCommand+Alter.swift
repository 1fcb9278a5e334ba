import ArgumentParser
import OnceClient

/// `once topic add-partitions|alter-config|trim`: changing a topic that exists.
extension TopicCommand {
    struct AddPartitions: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add-partitions",
            abstract: "Grow a topic to a larger number of partitions (keys may then map to other partitions).")

        @OptionGroup var client: ClientOptions

        @Argument(help: "Topic name")
        var name: String

        @Option(help: "The new total number of partitions")
        var partitions: Int

        func validate() throws {
            guard (1...Int(Int32.max)).contains(partitions) else { throw ValidationError("--partitions must be at least 1") }
        }

        func run() async throws {
            try await client.withClient { client in
                do {
                    try await client.createPartitions(name, count: Int32(partitions))
                } catch let error as KafkaError {
                    throw CommandFailure("cannot add partitions to '\(name)': \(error)")
                }
                print("topic \(name) now has \(partitions) partitions")
            }
        }
    }

    struct AlterConfig: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "alter-config", abstract: "Set or remove a topic's config overrides; the others stay.")

        @OptionGroup var client: ClientOptions

        @Argument(help: "Topic name")
        var name: String

        @Option(name: .customLong("set"), help: "Override KEY=VALUE (repeatable)")
        var sets: [String] = []

        @Option(name: .customLong("delete"), help: "Remove the override KEY, back to the default (repeatable)")
        var deletes: [String] = []

        func validate() throws {
            guard !sets.isEmpty || !deletes.isEmpty else { throw ValidationError("give at least one --set or --delete") }
            _ = try TopicCommand.keyValues(sets)
        }

        func run() async throws {
            let set = try TopicCommand.keyValues(sets)
            try await client.withClient { client in
                do {
                    try await client.alterTopicConfigs(name, set: set, delete: deletes)
                } catch let error as KafkaError {
                    throw CommandFailure("cannot alter the config of '\(name)': \(error)")
                }
                for (key, value) in set { print("\(name): \(key)=\(value)") }
                for key in deletes { print("\(name): \(key) back to its default") }
            }
        }
    }

    struct Trim: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a partition's records below an offset (DeleteRecords); the log then starts there.")

        @OptionGroup var client: ClientOptions

        @Argument(help: "Topic name")
        var name: String

        @Option(help: "Partition to trim; every partition when left out")
        var partition: Int32?

        @Option(help: "First offset to keep; the high watermark (everything) when left out")
        var before: Int64?

        func validate() throws {
            if let partition, partition < 0 { throw ValidationError("--partition must not be negative") }
            if let before, before < 0 { throw ValidationError("--before must not be negative") }
        }

        func run() async throws {
            try await client.withClient { client in
                let topic = try requireTopic(try await client.metadata(topics: [name]), name)
                let partitions = partition.map { [$0] } ?? topic.partitions.map(\.partition)
                let offsets = Dictionary(uniqueKeysWithValues: partitions.map { ($0, before ?? -1) })
                let starts: [Int32: Int64]
                do {
                    starts = try await client.deleteRecords(name, before: offsets)
                } catch let error as KafkaError {
                    throw CommandFailure("cannot trim '\(name)': \(error)")
                }
                for (partition, start) in starts.sorted(by: { $0.key < $1.key }) {
                    print("\(name)[\(partition)] now starts at offset \(start)")
                }
            }
        }
    }
}
