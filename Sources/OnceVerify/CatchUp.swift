import OnceClient

/// Whether a read_committed consumer has read everything there is: no transaction open (the
/// last stable offset equals the high watermark) and its position at or past it. Returns the
/// positions when it has.
func caughtUp(_ consumer: KafkaConsumer, partitions: [TopicPartition], client: KafkaClient) async -> [TopicPartition: Int64]? {
    let specs = Dictionary(uniqueKeysWithValues: partitions.map { ($0, OffsetSpec.latest) })
    guard let highWatermarks = try? await client.listOffsets(specs, isolation: .readUncommitted),
        let stable = try? await client.listOffsets(specs, isolation: .readCommitted)
    else { return nil }
    var positions: [TopicPartition: Int64] = [:]
    for partition in partitions {
        guard let position = await consumer.position(partition), let lso = stable[partition],
            lso == highWatermarks[partition], position >= lso
        else { return nil }
        positions[partition] = position
    }
    return positions
}

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
