import Metrics

/// The producer's swift-metrics, dimensioned by client id (as every Kafka client's metrics
/// are) and, for what belongs to a topic, by topic (Kafka's producer-topic-metrics), so one
/// process with several producers and topics can tell them apart.
///
/// Handles are made once per topic and kept: asking the metrics factory per record would cost
/// more than appending the record.
struct ProducerMetrics {
    struct Topic {
        let recordsSent: Counter
        let bytesSent: Counter
        let recordErrors: Counter
        /// From the record's batch being opened to the broker's acknowledgement: linger,
        /// queueing behind in-flight batches, retries and the round trip, as a caller of `send`
        /// waits for it (Kafka's record-queue-time plus request-latency).
        let deliveryLatency: Timer
    }

    let clientId: String
    let batchesSent: Counter
    let retries: Counter
    let epochBumps: Counter
    /// One Produce request's round trip.
    let requestLatency: Timer
    private let factory: any MetricsFactory
    private var topics: [String: Topic] = [:]

    init(clientId: String, factory: any MetricsFactory = MetricsSystem.factory) {
        self.clientId = clientId
        self.factory = factory
        let client = [("client_id", clientId)]
        batchesSent = Counter(label: "once_client_producer_batches_sent_total", dimensions: client, factory: factory)
        retries = Counter(label: "once_client_producer_retries_total", dimensions: client, factory: factory)
        epochBumps = Counter(label: "once_client_producer_epoch_bumps_total", dimensions: client, factory: factory)
        requestLatency = Timer(label: "once_client_producer_request_latency_seconds", dimensions: client, factory: factory)
    }

    mutating func topic(_ name: String) -> Topic {
        if let known = topics[name] { return known }
        let dimensions = [("client_id", clientId), ("topic", name)]
        let topic = Topic(
            recordsSent: Counter(label: "once_client_producer_records_sent_total", dimensions: dimensions, factory: factory),
            bytesSent: Counter(label: "once_client_producer_bytes_sent_total", dimensions: dimensions, factory: factory),
            recordErrors: Counter(label: "once_client_producer_record_errors_total", dimensions: dimensions, factory: factory),
            deliveryLatency: Timer(label: "once_client_producer_delivery_latency_seconds", dimensions: dimensions, factory: factory))
        topics[name] = topic
        return topic
    }
}
