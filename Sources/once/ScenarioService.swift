import ArgumentParser
import Foundation
import Logging
import OnceClient
import ServiceLifecycle

/// A lazily connecting producer and consumer run as services of one `ServiceGroup`, started
/// before the broker may be up: produces --count records (`value-%09d`, partition 0) with
/// `send`, printing `delivered I` per acknowledgement, and after the first half waits until the
/// file --resume-file exists (the test restarts the broker meanwhile) and prints `resumed`.
/// The consumer reads partition 0 from the start; once it has every value it prints
/// `consumed N distinct D` and the group shuts down.
struct ScenarioService: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "service")

    @Option(name: .customLong("bootstrap-server")) var bootstrapServer: String
    @Option var topic: String
    @Option var count: Int
    @Option var resumeFile: String

    func run() async throws {
        let servers = BootstrapServer.parseList(bootstrapServer)!
        var producerConfiguration = ProducerConfiguration(bootstrapServers: servers)
        producerConfiguration.client.connectTimeout = .seconds(2)
        producerConfiguration.client.requestTimeout = .seconds(5)
        producerConfiguration.retryBackoff = .milliseconds(50)
        var consumerConfiguration = ConsumerConfiguration(bootstrapServers: servers)
        consumerConfiguration.autoOffsetReset = .earliest
        consumerConfiguration.fetchMaxWait = .milliseconds(200)
        consumerConfiguration.client.connectTimeout = .seconds(2)
        consumerConfiguration.client.requestTimeout = .seconds(5)
        let producer = try KafkaProducer(configuration: producerConfiguration)
        let consumer = try KafkaConsumer(configuration: consumerConfiguration)
        try await consumer.assign([TopicPartition(topic, 0)])
        let services = ServiceGroup(
            services: [producer, consumer], gracefulShutdownSignals: [.sigterm],
            logger: Logger(label: "once.scenario.service"))
        let (topic, count, resumeFile) = (topic, count, resumeFile)
        try await withThrowingTaskGroup(of: Void.self) { tasks in
            tasks.addTask { try await services.run() }
            emit("started")
            tasks.addTask {
                for i in 0..<count {
                    if i == count / 2 {
                        while access(resumeFile, F_OK) != 0 { try await Task.sleep(for: .milliseconds(50)) }
                        emit("resumed")
                    }
                    try await producer.send(
                        ProducerMessage(topic: topic, partition: 0, value: String(format: "value-%09d", i)))
                    emit("delivered \(i)")
                }
            }
            tasks.addTask {
                var values = Set<String>()
                var seen = 0
                for try await record in consumer.records {
                    seen += 1
                    values.insert(String(decoding: record.value ?? [], as: UTF8.self))
                    if values.count == count { break }
                }
                emit("consumed \(seen) distinct \(values.count)")
                await services.triggerGracefulShutdown()
            }
            try await tasks.waitForAll()
        }
    }
}

/// One line at a time, flushed, so the test reacts to each as it comes.
private func emit(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
