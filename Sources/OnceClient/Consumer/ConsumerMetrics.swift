import Metrics

/// The consumer's swift-metrics, dimensioned by client id and, for records, by topic (Kafka's
/// consumer-fetch-manager-metrics per topic). Handles are kept per topic so a fetch does not
/// look them up in the metrics factory again.
struct ConsumerMetrics {
    struct Topic {
        let records: Counter
        /// Key and value bytes handed to the application.
        let bytes: Counter
    }

    let clientId: String
    let fetches: Counter
    /// One Fetch round trip, including the time the broker holds it waiting for data
    /// (`fetchMaxWait`), as Kafka's fetch-latency counts it.
    let fetchLatency: Timer
    private let factory: any MetricsFactory
    private var topics: [String: Topic] = [:]

    init(clientId: String, factory: any MetricsFactory = MetricsSystem.factory) {
        self.clientId = clientId
        self.factory = factory
        let client = [("client_id", clientId)]
        fetches = Counter(label: "once_client_consumer_fetches_total", dimensions: client, factory: factory)
        fetchLatency = Timer(label: "once_client_consumer_fetch_latency_seconds", dimensions: client, factory: factory)
    }

    mutating func topic(_ name: String) -> Topic {
        if let known = topics[name] { return known }
        let dimensions = [("client_id", clientId), ("topic", name)]
        let topic = Topic(
            records: Counter(label: "once_client_consumer_records_total", dimensions: dimensions, factory: factory),
            bytes: Counter(label: "once_client_consumer_bytes_total", dimensions: dimensions, factory: factory))
        topics[name] = topic
        return topic
    }
}
