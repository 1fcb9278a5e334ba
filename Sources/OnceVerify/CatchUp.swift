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
