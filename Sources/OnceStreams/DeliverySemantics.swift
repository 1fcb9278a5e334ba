/// How often a consumed record's effect happens when the consumer crashes and restarts. The
/// choice is where the offset commit goes relative to the effect, and what makes them atomic.
public enum DeliverySemantics: String, Hashable, Sendable, CaseIterable {
    /// Commit the offsets, then apply the effects. A crash between the two loses the records
    /// whose offsets were committed: each effect happens zero or one time. Cheapest; for
    /// telemetry where a gap is better than a duplicate.
    case atMostOnce = "at-most-once"
    /// Apply the effects, then commit the offsets. A crash between the two replays the records
    /// since the last commit: each effect happens one or more times. The Kafka default; the
    /// effect must tolerate repeats.
    case atLeastOnce = "at-least-once"
    /// Kafka to Kafka: the outputs and the input offsets commit in one Kafka transaction
    /// (`ExactlyOnceProcessor`). Costs a transaction per batch (a few round trips) and
    /// read_committed latency downstream; holds only for effects that are Kafka records.
    case exactlyOnceTransactional = "exactly-once-transactional"
    /// Kafka to a database: the effect and the event id commit in one database transaction, and
    /// a redelivered id is skipped (`IdempotentConsumer` with a `DedupStore`). Costs a unique-key
    /// insert per event and the id table's storage; needs a stable event id on every record.
    case exactlyOnceDeduplicated = "exactly-once-deduplicated"
}
