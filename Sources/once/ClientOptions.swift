import ArgumentParser
import Foundation
import OnceClient

/// Flags every client command shares, and the one place that turns a client failure into the
/// single stderr line and non-zero exit the commands promise.
struct ClientOptions: ParsableArguments {
    /// Read from the environment when the flag is absent, as rpk reads RPK_BROKERS, so a shell
    /// pointed at one cluster once needs no flag on every command.
    static let brokersVariable = "ONCE_BROKERS"
    static let defaultBootstrap = "127.0.0.1:9092"

    @Option(
        name: .customLong("bootstrap-server"),
        help: "Broker address(es): HOST:PORT[,HOST:PORT...] (default: $ONCE_BROKERS, else 127.0.0.1:9092)")
    var bootstrapFlag: String?

    var bootstrapServer: String { Self.bootstrap(flag: bootstrapFlag) }

    static func bootstrap(flag: String?) -> String {
        flag ?? ProcessInfo.processInfo.environment[brokersVariable] ?? defaultBootstrap
    }

    @Option(help: "Client id sent to the broker")
    var clientId: String = "once-cli"

    @Option(help: "Milliseconds to wait for a broker response")
    var requestTimeoutMs: Int = 30_000

    @OptionGroup var connection: ConnectionProperties

    func validate() throws {
        guard BootstrapServer.parseList(bootstrapServer) != nil else {
            let source = bootstrapFlag == nil ? Self.brokersVariable : "--bootstrap-server"
            throw ValidationError("\(source) must be HOST:PORT[,HOST:PORT...], got '\(bootstrapServer)'")
        }
        guard requestTimeoutMs > 0 else { throw ValidationError("--request-timeout-ms must be positive") }
    }

    /// Connects, runs `body`, closes the client, and reports any failure as one stderr line
    /// followed by exit status 1.
    func withClient(_ body: (KafkaClient) async throws -> Void) async throws {
        let configuration = try clientConfiguration()
        let client: KafkaClient
        do {
            client = try await KafkaClient.connect(
                bootstrapServers: BootstrapServer.parseList(bootstrapServer)!, configuration: configuration)
        } catch {
            printError(describe(error))
            throw ExitCode.failure
        }
        do {
            try await body(client)
            await client.close()
        } catch {
            await client.close()
            if error is ExitCode { throw error }
            printError(describe(error))
            throw ExitCode.failure
        }
    }
}

extension ClientOptions {
    /// The connection settings every client of a command shares: id, timeout, security.
    func clientConfiguration() throws -> KafkaClientConfiguration {
        var configuration = KafkaClientConfiguration()
        configuration.clientId = clientId
        configuration.requestTimeout = .milliseconds(requestTimeoutMs)
        try connection.apply(to: &configuration)
        return configuration
    }
}

/// A failure already phrased for the user; printed as `once: <message>` with exit status 1.
struct CommandFailure: Error, CustomStringConvertible {
    var message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

func describe(_ error: any Error) -> String {
    switch error {
    case let failure as CommandFailure: failure.message
    case let error as KafkaClientError: error.description
    case let error as KafkaError: error.description
    default: "\(error)"
    }
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("once: \(message)\n".utf8))
}

/// Fails with a clear message when the metadata says `name` does not exist.
func requireTopic(_ metadata: ClusterMetadata, _ name: String) throws -> TopicMetadata {
    guard let topic = metadata.topic(name) else {
        throw CommandFailure("topic '\(name)' does not exist")
    }
    if let error = topic.error {
        if error.code == .unknownTopicOrPartition {
            throw CommandFailure("topic '\(name)' does not exist")
        }
        throw CommandFailure("topic '\(name)': \(error)")
    }
    return topic
}
