import KafkaProtocol
import Metrics

/// The broker's swift-metrics instruments, created once so the request path only increments.
/// Whatever backend the process bootstrapped (Prometheus in `once broker`) receives them.
final class BrokerMetrics: Sendable {
    private let requests: [ApiKey: Counter]
    private let bytesIn: Counter
    private let bytesOut: Counter
    private let appendedBatches: Counter
    private let fetchedBytes: Counter

    init() {
        var requests: [ApiKey: Counter] = [:]
        for api in SupportedApis.ranges.keys {
            requests[api] = Counter(label: "once_requests_total", dimensions: [("api", api.name)])
        }
        self.requests = requests
        bytesIn = Counter(label: "once_request_bytes_total")
        bytesOut = Counter(label: "once_response_bytes_total")
        appendedBatches = Counter(label: "once_produced_batches_total")
        fetchedBytes = Counter(label: "once_fetched_bytes_total")
        // As Kafka's app-info: which build is running, for dashboards and alerts.
        Gauge(label: "once_build_info", dimensions: [("version", OnceVersion.string)]).record(1)
    }

    func requestReceived(_ api: ApiKey, bytes: Int) {
        requests[api]?.increment()
        bytesIn.increment(by: bytes)
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

    /// Counts a non-zero error code answered to a client, by name.
    func error(_ api: ApiKey, _ code: ErrorCode) {
        Counter(label: "once_errors_total", dimensions: [("api", api.name), ("error", code.name)]).increment()
    }
}
