import OnceClient

/// Connects a consumer, retrying while the cluster is unreachable.
func connectConsumer(_ configuration: VerifyConfiguration) async -> KafkaConsumer? {
    while !Task.isCancelled {
        do {
            return try await KafkaConsumer.connect(
                configuration: configuration.consumerConfiguration(), logger: configuration.logger("once.consumer"))
        } catch {
            configuration.log("consumer: cannot connect yet: \(error)")
            try? await Task.sleep(for: .milliseconds(200))
        }
    }
    return nil
}

extension ConsumerRecord {
    /// The workload's record id: the value, as written.
    var recordId: String { String(decoding: value ?? [], as: UTF8.self) }
}
