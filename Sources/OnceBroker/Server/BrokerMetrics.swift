import KafkaProtocol
import Metrics
import NIOCore
import Synchronization

/// The broker's swift-metrics instruments, created once so the request path only increments.
/// Whatever backend the process bootstrapped (Prometheus in `once broker`) receives them. Gauges
/// that describe state (lag, transactions, sizes) are not here: `BrokerStateMetrics` computes them
/// when `/metrics` is scraped, so the request path never maintains them.
final class BrokerMetrics: Sendable {
    private let requests: [ApiKey: Counter]
    private let latency: [ApiKey: Metrics.Timer]
    private let bytesIn: Counter
    private let bytesOut: Counter
    private let appendedBatches: Counter
    private let fetchedBytes: Counter
    private let acceptedConnections: Counter
    private let refusedConnections: [RefusalReason: Counter]
    private let topics = Mutex<[String: TopicCounters]>([:])

    /// Why a connection was refused, as the label of `once_connections_rejected_total`.
    enum RefusalReason: String, CaseIterable, Sendable {
        case maxConnections = "max_connections"
        case maxConnectionsPerIp = "max_connections_per_ip"
    }

    /// One topic's traffic counters; one increment per request per topic, never per record.
    private struct TopicCounters: Sendable {
        var bytesIn: Counter
        var recordsIn: Counter
        var bytesOut: Counter

        init(_ topic: String) {
            bytesIn = Counter(label: "once_topic_bytes_in_total", dimensions: [("topic", topic)])
            recordsIn = Counter(label: "once_topic_records_in_total", dimensions: [("topic", topic)])
            bytesOut = Counter(label: "once_topic_bytes_out_total", dimensions: [("topic", topic)])
        }

        func destroy() {
            bytesIn.destroy()
            recordsIn.destroy()
            bytesOut.destroy()
        }
    }

    init() {
        var requests: [ApiKey: Counter] = [:]
        var latency: [ApiKey: Metrics.Timer] = [:]
        for api in SupportedApis.ranges.keys {
            requests[api] = Counter(label: "once_requests_total", dimensions: [("api", api.name)])
            latency[api] = Metrics.Timer(label: BrokerMetricNames.requestDuration, dimensions: [("api", api.name)])
        }
        self.requests = requests
        self.latency = latency
        bytesIn = Counter(label: "once_request_bytes_total")
        bytesOut = Counter(label: "once_response_bytes_total")
        appendedBatches = Counter(label: "once_produced_batches_total")
        fetchedBytes = Counter(label: "once_fetched_bytes_total")
        acceptedConnections = Counter(label: "once_connections_accepted_total")
        var refused: [RefusalReason: Counter] = [:]
        for reason in RefusalReason.allCases {
            refused[reason] = Counter(label: "once_connections_rejected_total", dimensions: [("reason", reason.rawValue)])
        }
        refusedConnections = refused
        // As Kafka's app-info: which build is running, for dashboards and alerts.
        Gauge(label: "once_build_info", dimensions: [("version", OnceVersion.string)]).record(1)
    }

    func requestReceived(_ api: ApiKey, bytes: Int) {
        requests[api]?.increment()
        bytesIn.increment(by: bytes)
    }

    /// From the frame's arrival to its response being ready to write, as Kafka's TotalTimeMs
    /// without the send: a long-polling Fetch counts its wait.
    func requestCompleted(_ api: ApiKey, since start: NIODeadline) {
        latency[api]?.recordNanoseconds((NIODeadline.now() - start).nanoseconds)
    }

    func responseSent(_ api: ApiKey, bytes: Int) {
        bytesOut.increment(by: bytes)
    }

    func batchesAppended(_ count: Int) {
        appendedBatches.increment(by: count)
    }

    func recordBytesFetched(_ bytes: Int) {
        fetchedBytes.increment(by: bytes)
    }

    func connectionAccepted() {
        acceptedConnections.increment()
    }

    func connectionRefused(_ reason: RefusalReason) {
        refusedConnections[reason]?.increment()
    }

    /// What one Produce request appended to one topic (retried duplicates excluded).
    func topicAppended(_ topic: String, bytes: Int, records: Int) {
        guard bytes > 0 else { return }
        let counters = counters(topic)
        counters.bytesIn.increment(by: bytes)
        counters.recordsIn.increment(by: records)
    }

    /// Record bytes one Fetch response carries from one topic. Records are not counted on the way
    /// out: the record sets leave with sendfile, unparsed (Kafka has no messages-out meter either).
    func topicFetched(_ topic: String, bytes: Int) {
        guard bytes > 0 else { return }
        counters(topic).bytesOut.increment(by: bytes)
    }

    /// A deleted topic's series go with it, so deleting and creating topics does not grow the scrape.
    func topicDeleted(_ topic: String) {
        topics.withLock { $0.removeValue(forKey: topic) }?.destroy()
    }

    private func counters(_ topic: String) -> TopicCounters {
        topics.withLock { counters in
            if let existing = counters[topic] { return existing }
            let made = TopicCounters(topic)
            counters[topic] = made
            return made
        }
    }

    /// Counts a non-zero error code answered to a client, by name.
    func error(_ api: ApiKey, _ code: ErrorCode) {
        Counter(label: "once_errors_total", dimensions: [("api", api.name), ("error", code.name)]).increment()
    }
}

/// Names and buckets the process needs when it bootstraps the Prometheus backend.
public enum BrokerMetricNames {
    public static let requestDuration = "once_request_duration_seconds"

    /// From a cached metadata answer (tens of microseconds) to a Fetch parked for its whole wait or
    /// a synced produce on a slow disk (seconds): 0.05 ms to 10 s, about three buckets a decade.
    public static let requestDurationBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500),
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25),
        .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]
}
