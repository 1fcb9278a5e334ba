import ArgumentParser
import KafkaProtocol

/// `--compression` takes Kafka's codec names, as kcat's `-z` and librdkafka's `compression.codec` do.
extension CompressionCodec: ExpressibleByArgument {
    public init?(argument: String) {
        self.init(name: argument)
    }

    public var defaultValueDescription: String { name }

    public static var allValueStrings: [String] { allCases.map(\.name) }

    static var argumentNames: String { allValueStrings.joined(separator: "|") }
}
