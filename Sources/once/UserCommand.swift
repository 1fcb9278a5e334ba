import ArgumentParser
import Foundation
import OnceClient

/// `once user create|delete|list`: SCRAM credentials over AlterUserScramCredentials and
/// DescribeUserScramCredentials (KIP-554), as `kafka-configs --alter --add-config
/// 'SCRAM-SHA-512=[password=...]' --entity-type users` manages them. The salted password is
/// computed here; the password itself is never sent.
struct UserCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "user",
        abstract: "Manage SCRAM users (the first one: once broker --add-scram).",
        subcommands: [Create.self, Delete.self, List.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a user's SCRAM credential, or replace it.")

        @OptionGroup var client: ClientOptions

        @Argument(help: "User name")
        var name: String

        @Option(help: "SCRAM-SHA-256 or SCRAM-SHA-512 (default: SCRAM-SHA-512)")
        var mechanism: String = "SCRAM-SHA-512"

        @Option(help: "The user's password [env: ONCE_USER_PASSWORD]")
        var password: String?

        @Option(help: "PBKDF2 iterations, 4096...16384 (default: 4096)")
        var iterations: Int = 4096

        func run() async throws {
            let mechanism = try scramMechanism(self.mechanism)
            guard let password = password ?? ProcessInfo.processInfo.environment["ONCE_USER_PASSWORD"], !password.isEmpty else {
                throw ValidationError("--password (or ONCE_USER_PASSWORD) is required")
            }
            try await client.withClient { client in
                try await client.upsertUserScramCredential(
                    user: name, mechanism: mechanism, password: password, iterations: iterations)
                print("user '\(name)': \(mechanism.rawValue) credential stored (\(iterations) iterations)")
            }
        }
    }

    struct Delete: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Delete a user's SCRAM credential for one mechanism.")

        @OptionGroup var client: ClientOptions

        @Argument(help: "User name")
        var name: String

        @Option(help: "SCRAM-SHA-256 or SCRAM-SHA-512 (default: SCRAM-SHA-512)")
        var mechanism: String = "SCRAM-SHA-512"

        func run() async throws {
            let mechanism = try scramMechanism(self.mechanism)
            try await client.withClient { client in
                try await client.deleteUserScramCredential(user: name, mechanism: mechanism)
                print("user '\(name)': \(mechanism.rawValue) credential deleted")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List users and their SCRAM mechanisms.")

        @OptionGroup var client: ClientOptions

        @Argument(help: "Only these users (default: all)")
        var names: [String] = []

        func run() async throws {
            try await client.withClient { client in
                let results = try await client.describeUserScramCredentials(users: names)
                print("USER\tMECHANISM\tITERATIONS")
                var missing: [String] = []
                for (user, result) in results.sorted(by: { $0.user < $1.user }) {
                    switch result {
                    case .success(let infos):
                        for info in infos { print("\(user)\t\(info.mechanism.rawValue)\t\(info.iterations)") }
                    case .failure(let error):
                        if error.code == .resourceNotFound { missing.append(user) } else { throw error }
                    }
                }
                if !missing.isEmpty { throw CommandFailure("no SCRAM credentials for \(missing.joined(separator: ", "))") }
            }
        }
    }
}

private func scramMechanism(_ name: String) throws -> ClientSASL.Mechanism {
    guard let mechanism = ClientSASL.Mechanism(rawValue: name.uppercased()), mechanism != .plain else {
        throw ValidationError("--mechanism takes SCRAM-SHA-256 or SCRAM-SHA-512, not '\(name)'")
    }
    return mechanism
}
