import ArgumentParser
import Foundation
import OnceClient

/// `once txn list|describe|abort|find-hanging|abort-hanging`: what the transaction coordinator
/// knows, a safe way for an operator to end a hung transaction, and Kafka's tools (KIP-664) for a
/// partition's hanging transaction, whose marker was lost.
struct TxnCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "txn",
        abstract: "List, describe and abort transactions.",
        subcommands: [List.self, Describe.self, Abort.self, FindHanging.self, AbortHanging.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List transactional ids, their states and how long each open transaction has been open.",
            discussion: "With --hanging, lists hanging transactions instead, as find-hanging does.")
        @OptionGroup var client: ClientOptions
        @Option(name: .customLong("state"), help: "Only these states (Empty, Ongoing, PrepareCommit, ...); repeatable")
        var states: [String] = []
        @Flag(help: "List open transactions on partitions that no coordinator considers live")
        var hanging = false

        func validate() throws {
            if hanging, !states.isEmpty { throw ValidationError("--hanging and --state cannot be combined") }
        }

        func run() async throws {
            if hanging {
                try await client.withClient { try await FindHanging.printHanging(topic: nil, $0) }
                return
            }
            try await client.withClient { client in
                let now = Int64(Date().timeIntervalSince1970 * 1000)
                print("TRANSACTIONAL-ID\tPRODUCER-ID\tSTATE\tAGE")
                for txn in try await client.listTransactions(states: states) {
                    // Only an open transaction has an age worth reading; its start is in DescribeTransactions.
                    var age = "-"
                    if !["Empty", "CompleteCommit", "CompleteAbort", "Dead"].contains(txn.state),
                        let described = try? await client.describeTransaction(txn.transactionalId),
                        described.startTimeMs >= 0
                    {
                        age = humanDuration(milliseconds: now - described.startTimeMs)
                    }
                    print("\(txn.transactionalId)\t\(txn.producerId)\t\(txn.state)\t\(age)")
                }
            }
        }
    }

    struct Describe: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one transaction.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Transactional id") var transactionalId: String

        func run() async throws {
            try await client.withClient { client in
                let txn = try await TxnCommand.describe(transactionalId, with: client)
                print("transactional id: \(txn.transactionalId)")
                print("state:            \(txn.state)")
                print("producer:         \(txn.producerId) epoch \(txn.producerEpoch)")
                print("timeout:          \(txn.timeoutMs) ms")
                print("started:          \(txn.startTimeMs < 0 ? "-" : String(txn.startTimeMs))")
                print("partitions:       \(txn.partitions.map(\.description).joined(separator: ", "))")
            }
        }
    }

    struct Abort: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Abort a hung transaction: its records are discarded and its producer is fenced.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Transactional id") var transactionalId: String

        func run() async throws {
            try await client.withClient { client in
                let before = try await TxnCommand.describe(transactionalId, with: client)
                guard before.state == "Ongoing" else {
                    throw CommandFailure("'\(transactionalId)' has no open transaction (state \(before.state)); nothing to abort")
                }
                let epoch = try await client.abortTransaction(transactionalId, timeoutMs: before.timeoutMs)
                print("aborted '\(transactionalId)' (was \(before.state)); producer \(before.producerId) fenced, epoch now \(epoch)")
            }
        }
    }

    struct FindHanging: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "find-hanging",
            abstract: "List open transactions on partitions that no coordinator considers live.")
        @OptionGroup var client: ClientOptions
        @Option(help: "Only this topic (default: every topic)") var topic: String?

        func run() async throws {
            try await client.withClient { try await Self.printHanging(topic: topic, $0) }
        }

        static func printHanging(topic: String?, _ client: KafkaClient) async throws {
            let hanging = try await client.findHangingTransactions(in: try await TxnCommand.partitions(topic, client))
            print("TOPIC\tPARTITION\tPRODUCER-ID\tEPOCH\tSTART-OFFSET\tREASON")
            for h in hanging {
                print("\(h.partition.topic)\t\(h.partition.partition)\t\(h.producerId)\t\(h.producerEpoch)\t\(h.startOffset)\t\(h.reason)")
            }
        }
    }

    struct AbortHanging: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "abort-hanging",
            abstract: "Abort one partition's hanging transaction (refused while its coordinator considers it live).")
        @OptionGroup var client: ClientOptions
        @Option(help: "Topic") var topic: String
        @Option(help: "Partition") var partition: Int32
        @Option(help: "Producer id (from find-hanging)") var producerId: Int64

        func run() async throws {
            try await client.withClient { client in
                let found = try await client.findHangingTransactions(in: [TopicPartition(topic, partition)])
                guard let hanging = found.first(where: { $0.producerId == producerId }) else {
                    throw CommandFailure("producer \(producerId) has no hanging transaction on \(topic)-\(partition)")
                }
                do {
                    try await client.abortHangingTransaction(hanging)
                } catch let error as KafkaError {
                    throw CommandFailure("cannot abort: \(error)")
                }
                print("aborted the transaction of producer \(producerId) on \(topic)-\(partition) from offset \(hanging.startOffset)")
            }
        }
    }

    /// Every partition of one topic, or of every topic but the internal ones.
    static func partitions(_ topic: String?, _ client: KafkaClient) async throws -> [TopicPartition] {
        let metadata = try await client.metadata(topics: topic.map { [$0] })
        return metadata.topics.filter { topic == nil ? !$0.isInternal : $0.name == topic }.flatMap { t in
            t.partitions.map { TopicPartition(t.name, $0.partition) }
        }
    }

    /// The coordinator's description of a transactional id, or one clear line naming the Kafka error.
    static func describe(_ transactionalId: String, with client: KafkaClient) async throws -> TransactionDescription {
        do {
            return try await client.describeTransaction(transactionalId)
        } catch let error as KafkaError {
            throw CommandFailure("cannot describe '\(transactionalId)': \(error)")
        }
    }
}
