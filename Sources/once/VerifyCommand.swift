import ArgumentParser
import Foundation
import OnceCheck
import OnceClient
import OnceVerify

/// `once verify`: runs a transactional workload against any Kafka-compatible cluster and
/// checks the history it observed for exactly-once violations; or checks a recorded history.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a cluster's exactly-once guarantees with a transactional workload.",
        discussion: """
            Several transactional producers write unique record ids to a fresh topic (some \
            transactions aborted, some handed over to a newer instance mid-transaction), a plain \
            idempotent producer writes alongside, a read-process-write stage copies the input to \
            an output topic committing its offsets in each transaction, and a read_committed \
            reader reads both topics. At the end the reader drains to the last stable offset and \
            the history is checked. Exit status 1 when any anomaly is found (or the reader could \
            not catch up). With --check-history FILE nothing connects: the file's history (JSON \
            lines, as --history-out writes) is checked.
            """
    )

    @Option(
        name: .customLong("bootstrap-server"),
        help: "Broker address(es): HOST:PORT[,HOST:PORT...] (default: $ONCE_BROKERS, else 127.0.0.1:9092)")
    var bootstrapFlag: String?

    var bootstrapServer: String { ClientOptions.bootstrap(flag: bootstrapFlag) }

    @OptionGroup var connection: ConnectionProperties

    @Option(help: "Seconds the writers run")
    var seconds: Int = 60

    @Option(help: "Transactional producers, each with its own transactional id")
    var producers: Int = 3

    @Option(help: "Partitions of the input and output topics")
    var partitions: Int32 = 3

    @Option(help: "Replicas of each topic")
    var replicationFactor: Int16 = 1

    @Option(help: "Percent of transactions aborted on purpose")
    var abortPercent: Int = 20

    @Option(help: "Every N transactions a writer is fenced by a newer instance mid-transaction (0: never)")
    var fenceEvery: Int = 25

    @Option(help: "Shell command run periodically to disturb the cluster, e.g. kill and restart a broker")
    var faultCommand: String?

    @Option(help: "Seconds between runs of --fault-command")
    var faultIntervalSeconds: Int = 10

    @Option(help: "Seconds the processor and reader may take to catch up after the writers stop")
    var drainTimeoutSeconds: Int = 60

    @Option(help: "Write the recorded history to this file (JSON lines)")
    var historyOut: String?

    @Option(help: "Check the history in this file (JSON lines) instead of running a workload")
    var checkHistory: String?

    @Option(help: "Examples printed per anomaly class")
    var examples: Int = 3

    @Flag(help: "Print progress (topics, faults, draining) on stderr")
    var verbose = false

    func validate() throws {
        guard BootstrapServer.parseList(bootstrapServer) != nil else {
            throw ValidationError("--bootstrap-server must be HOST:PORT[,HOST:PORT...], got '\(bootstrapServer)'")
        }
        guard seconds > 0 else { throw ValidationError("--seconds must be positive") }
        guard producers > 0 else { throw ValidationError("--producers must be positive") }
        guard partitions > 0 else { throw ValidationError("--partitions must be positive") }
        guard replicationFactor > 0 else { throw ValidationError("--replication-factor must be positive") }
        guard (0...100).contains(abortPercent) else { throw ValidationError("--abort-percent must be 0 to 100") }
        guard fenceEvery >= 0 else { throw ValidationError("--fence-every must not be negative") }
        guard faultIntervalSeconds > 0 else { throw ValidationError("--fault-interval-seconds must be positive") }
        guard drainTimeoutSeconds > 0 else { throw ValidationError("--drain-timeout-seconds must be positive") }
        guard examples >= 0 else { throw ValidationError("--examples must not be negative") }
    }

    func run() async throws {
        if let checkHistory {
            let events: [HistoryEvent]
            do {
                events = try HistoryFile.decode(try Data(contentsOf: URL(fileURLWithPath: checkHistory)))
            } catch {
                printError("cannot read history \(checkHistory): \(error)")
                throw ExitCode.failure
            }
            let report = HistoryChecker.check(events)
            for line in ReportText.lines(report, examples: examples) { print(line) }
            if !report.isClean { throw ExitCode.failure }
            return
        }

        var configuration = VerifyConfiguration(bootstrapServers: BootstrapServer.parseList(bootstrapServer)!)
        try connection.apply(to: &configuration.connection)
        configuration.duration = .seconds(seconds)
        configuration.writers = producers
        configuration.partitions = partitions
        configuration.replicationFactor = replicationFactor
        configuration.abortPercent = abortPercent
        configuration.fenceEvery = fenceEvery
        configuration.faultCommand = faultCommand
        configuration.faultInterval = .seconds(faultIntervalSeconds)
        configuration.drainTimeout = .seconds(drainTimeoutSeconds)
        if verbose {
            configuration.log = { FileHandle.standardError.write(Data("verify: \($0)\n".utf8)) }
            configuration.clientLogLevel = .warning
        }
        let result: VerifyResult
        do {
            result = try await VerifyRun.run(configuration)
        } catch {
            printError(describe(error))
            throw ExitCode.failure
        }
        if let historyOut {
            do {
                try HistoryFile.encode(result.history).write(to: URL(fileURLWithPath: historyOut))
            } catch {
                printError("cannot write history \(historyOut): \(error)")
            }
        }
        print("verify: topics \(result.inputTopic) and \(result.outputTopic)")
        for line in ReportText.lines(result.report, examples: examples, faults: result.faults) { print(line) }
        if !result.drained {
            printError(
                "the processor or reader did not catch up within \(drainTimeoutSeconds) s; only what they got through was checked")
            throw ExitCode.failure
        }
        if !result.report.isClean { throw ExitCode.failure }
    }
}
