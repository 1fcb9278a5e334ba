import ArgumentParser
import Foundation
import OnceClient

/// `once group reset-offsets|delete|delete-offsets`: kafka-consumer-groups' write operations,
/// with its safety habit: a reset only prints the plan unless --execute is given.
extension GroupCommand {
    /// `TOPIC` or `TOPIC:P,P,...`, as kafka-consumer-groups' --topic.
    struct TopicSelection: ExpressibleByArgument {
        var topic: String
        var partitions: [Int32]?

        init?(argument: String) {
            guard let colon = argument.lastIndex(of: ":") else {
                guard !argument.isEmpty else { return nil }
                topic = argument
                return
            }
            topic = String(argument[..<colon])
            let list = argument[argument.index(after: colon)...].split(separator: ",").map { Int32($0) }
            guard !topic.isEmpty, !list.isEmpty, list.allSatisfy({ $0 != nil && $0! >= 0 }) else { return nil }
            partitions = list.map { $0! }
        }

        /// The selected partitions, checked against the cluster's metadata.
        func resolve(_ client: KafkaClient) async throws -> [TopicPartition] {
            let metadata = try await client.metadata(topics: [topic])
            let count = Int32(try requireTopic(metadata, topic).partitions.count)
            let chosen = partitions ?? Array(0..<count)
            if let missing = chosen.first(where: { $0 >= count }) {
                throw CommandFailure("topic '\(topic)' has \(count) partitions; partition \(missing) does not exist")
            }
            return chosen.map { TopicPartition(topic, $0) }
        }
    }

    struct ResetOffsets: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "reset-offsets",
            abstract: "Move a group's committed offsets; prints the plan, and applies it with --execute.",
            discussion: """
                Exactly one target: --to-earliest, --to-latest, --to-datetime, --to-offset or \
                --shift-by. New offsets are clamped to each partition's start and end, as \
                kafka-consumer-groups does. The group must have no members (state Empty or Dead).
                """)

        @OptionGroup var client: ClientOptions
        @Argument(help: "Group id") var name: String
        @Option(help: "TOPIC or TOPIC:P,P,...; repeatable") var topic: [TopicSelection] = []
        @Flag(help: "Every topic the group has committed offsets for") var allTopics = false
        @Flag(help: "Reset to each partition's earliest offset") var toEarliest = false
        @Flag(help: "Reset to each partition's end offset") var toLatest = false
        @Option(help: "Reset to the first record at or after this time: YYYY-MM-DDTHH:MM:SS[.sss][Z|+HH:MM] (UTC when no zone)")
        var toDatetime: String?
        @Option(help: "Reset to this offset") var toOffset: Int64?
        @Option(parsing: .unconditional, help: "Move each committed offset by N (negative: back)") var shiftBy: Int64?
        @Flag(help: "Apply the plan (default: only print it)") var execute = false

        func validate() throws {
            let targets = [toEarliest, toLatest, toDatetime != nil, toOffset != nil, shiftBy != nil].filter { $0 }.count
            guard targets == 1 else {
                throw ValidationError("give exactly one of --to-earliest, --to-latest, --to-datetime, --to-offset, --shift-by")
            }
            guard allTopics != !topic.isEmpty else { throw ValidationError("give --topic (repeatable) or --all-topics") }
            if let toDatetime, Self.parseDatetime(toDatetime) == nil {
                throw ValidationError("--to-datetime must look like 2026-12-01T10:00:00[.000][Z|+01:00], got '\(toDatetime)'")
            }
            if let toOffset, toOffset < 0 { throw ValidationError("--to-offset must not be negative") }
        }

        static func parseDatetime(_ text: String) -> Int64? {
            let formatter = ISO8601DateFormatter()
            let hasZone = text.hasSuffix("Z") || text.dropFirst(19).contains { $0 == "+" || $0 == "-" }
            let candidate = hasZone ? text : text + "Z"
            for options: ISO8601DateFormatter.Options in [[.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime]] {
                formatter.formatOptions = options
                if let date = formatter.date(from: candidate) { return Int64((date.timeIntervalSince1970 * 1000).rounded()) }
            }
            return nil
        }

        func run() async throws {
            try await client.withClient { client in
                let group = try await client.describeGroup(name)
                guard group.state == "Empty" || group.state == "Dead" else {
                    throw CommandFailure(
                        "offsets of group '\(name)' can only be reset while it has no members; its state is \(group.state)")
                }
                let committed = try await client.committedOffsets(group: name)
                var partitions: [TopicPartition] = []
                if allTopics {
                    partitions = committed.keys.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
                } else {
                    for selection in topic { partitions += try await selection.resolve(client) }
                }
                guard !partitions.isEmpty else { throw CommandFailure("group '\(name)' has no committed offsets to reset") }
                let plan = try await self.plan(partitions, committed: committed, client: client)
                print("GROUP\tTOPIC\tPARTITION\tNEW-OFFSET")
                for tp in partitions { print("\(name)\t\(tp.topic)\t\(tp.partition)\t\(plan[tp]!)") }
                if execute {
                    try await client.commitOffsets(group: name, plan)
                } else {
                    printError("dry run: nothing changed; add --execute to apply")
                }
            }
        }

        private func plan(
            _ partitions: [TopicPartition], committed: [TopicPartition: Int64], client: KafkaClient
        ) async throws -> [TopicPartition: Int64] {
            func all(_ spec: OffsetSpec) async throws -> [TopicPartition: Int64] {
                try await client.listOffsets(Dictionary(uniqueKeysWithValues: partitions.map { ($0, spec) }))
            }
            let starts = try await all(.earliest)
            let ends = try await all(.latest)
            var wanted: [TopicPartition: Int64]
            if toEarliest {
                wanted = starts
            } else if toLatest {
                wanted = ends
            } else if let toOffset {
                wanted = Dictionary(uniqueKeysWithValues: partitions.map { ($0, toOffset) })
            } else if let shiftBy {
                wanted = Dictionary(uniqueKeysWithValues: partitions.map { tp in
                    // Kafka shifts from the committed offset; a partition without one shifts from its end.
                    (tp, (committed[tp] ?? ends[tp]!) + shiftBy)
                })
            } else {
                let found = try await all(.timestamp(Self.parseDatetime(toDatetime!)!))
                wanted = found.reduce(into: [:]) { $0[$1.key] = $1.value >= 0 ? $1.value : ends[$1.key]! }
            }
            return wanted.reduce(into: [:]) { result, entry in
                result[entry.key] = min(max(entry.value, starts[entry.key]!), ends[entry.key]!)
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Delete a group with no members, and its committed offsets.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Group id") var name: String

        func run() async throws {
            try await client.withClient { client in
                do {
                    try await client.deleteGroup(name)
                } catch let error as KafkaError {
                    throw CommandFailure("cannot delete group '\(name)': \(error)")
                }
                print("deleted group '\(name)'")
            }
        }
    }

    struct DeleteOffsets: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "delete-offsets",
            abstract: "Delete a group's committed offsets for topics it is not subscribed to.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Group id") var name: String
        @Option(help: "TOPIC or TOPIC:P,P,...; repeatable") var topic: [TopicSelection]

        func validate() throws {
            guard !topic.isEmpty else { throw ValidationError("give at least one --topic") }
        }

        func run() async throws {
            try await client.withClient { client in
                var partitions: [TopicPartition] = []
                for selection in topic { partitions += try await selection.resolve(client) }
                do {
                    try await client.deleteOffsets(group: name, partitions)
                } catch let error as KafkaError {
                    throw CommandFailure("cannot delete offsets of group '\(name)': \(error)")
                }
                print("deleted \(partitions.count) committed offset(s) of group '\(name)'")
            }
        }
    }
}
