import ArgumentParser
import KafkaProtocol

/// `once`: the broker and the tools around it.
@main
struct OnceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "once",
        abstract: "A Kafka-compatible event broker built around exactly-once semantics.",
        version: OnceVersion.string,
        subcommands: [
            BrokerCommand.self, TopicCommand.self, ProduceCommand.self, ConsumeCommand.self, ProducersCommand.self,
            GroupCommand.self, ClusterCommand.self, PerfCommand.self, TxnCommand.self, VerifyCommand.self, DemoCommand.self,
            AclCommand.self,
            UserCommand.self,
        ]
    )
}
