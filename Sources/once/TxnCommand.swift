import ArgumentParser
import OnceClient

/// `once txn list|describe|abort`: what the transaction coordinator knows, and a safe way for an
/// operator to end a hung transaction.
struct TxnCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "txn",
        abstract: "List, describe and abort transactions.",
        subcommands: [List.self, Describe.self, Abort.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List transactional ids and their states.")
        @OptionGroup var client: ClientOptions
        @Option(name: .customLong("state"), help: "Only these states (Empty, Ongoing, PrepareCommit, ...); repeatable")
        var states: [String] = []

        func run() async throws {
            try await client.withClient { client in
                print("TRANSACTIONAL-ID\tPRODUCER-ID\tSTATE")
                for txn in try await client.listTransactions(states: states) {
                    print("\(txn.transactionalId)\t\(txn.producerId)\t\(txn.state)")
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

    /// The coordinator's description of a transactional id, or one clear line naming the Kafka error.
    static func describe(_ transactionalId: String, with client: KafkaClient) async throws -> TransactionDescription {
        do {
            return try await client.describeTransaction(transactionalId)
        } catch let error as KafkaError {
            throw CommandFailure("cannot describe '\(transactionalId)': \(error)")
        }
    }
}
