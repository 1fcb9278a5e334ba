/// A call the client cannot honour because of how it was made, not because of the broker or
/// the network: thrown at once, before anything is sent, so a wrong setting or call order is a
/// catchable error in a long-running service rather than a crash. Retrying the same call
/// cannot succeed.
public struct KafkaUsageError: Error, Hashable, Sendable, CustomStringConvertible {
    public enum Kind: Hashable, Sendable {
        /// `subscribe` needs `ConsumerConfiguration.groupId`: without a group nobody assigns
        /// partitions (librdkafka answers `Local: Invalid argument`, Java `InvalidGroupIdException`).
        case subscribeWithoutGroupId
        /// `assign` and `subscribe` on one consumer: Java's `IllegalStateException`.
        case assignAndSubscribe
        /// `seek` on a partition the consumer does not read.
        case partitionNotAssigned
        /// Idempotence and transactions need `acks = .all` (Java's `ConfigException`).
        case idempotenceNeedsAcksAll
        /// Idempotence keeps at most 5 batches in flight per partition (KIP-679).
        case maxInFlightOutOfRange
        /// No bootstrap server was given.
        case noBootstrapServers
        /// SCRAM credentials are per SCRAM mechanism; PLAIN has none of its own.
        case notAScramMechanism
    }

    public var kind: Kind
    public var description: String

    public init(_ kind: Kind, _ description: String) {
        self.kind = kind
        self.description = description
    }
}

extension ProducerConfiguration {
    /// The settings Kafka's producer rejects at construction, checked the same way.
    func validate() throws(KafkaUsageError) {
        guard !bootstrapServers.isEmpty else {
            throw KafkaUsageError(.noBootstrapServers, "at least one bootstrap server is required")
        }
        guard !isIdempotent || acks == .all else {
            throw KafkaUsageError(
                .idempotenceNeedsAcksAll, "idempotence and transactions need acks=all, not acks=\(acks.rawValue)")
        }
        guard !isIdempotent || (1...5).contains(maxInFlightPerPartition) else {
            throw KafkaUsageError(
                .maxInFlightOutOfRange,
                "idempotence allows 1 to 5 batches in flight per partition, not \(maxInFlightPerPartition)")
        }
    }
}
