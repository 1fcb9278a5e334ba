import CoreMetrics
import Synchronization
import Testing

@testable import OnceClient

/// Records every metric made, with its dimensions and values, so a test can read them back.
private final class RecordingMetrics: MetricsFactory, @unchecked Sendable {
    final class Recorder: CounterHandler, TimerHandler, RecorderHandler, MeterHandler, FloatingPointCounterHandler,
        @unchecked Sendable
    {
        let values = Mutex<[Int64]>([])
        func increment(by amount: Int64) { values.withLock { $0.append(amount) } }
        func increment(by amount: Double) { values.withLock { $0.append(Int64(amount)) } }
        func decrement(by amount: Double) { values.withLock { $0.append(-Int64(amount)) } }
        func reset() {}
        func recordNanoseconds(_ duration: Int64) { values.withLock { $0.append(duration) } }
        func record(_ value: Int64) { values.withLock { $0.append(value) } }
        func record(_ value: Double) { values.withLock { $0.append(Int64(value)) } }
        func set(_ value: Int64) { record(value) }
        func set(_ value: Double) { record(value) }
        var total: Int64 { values.withLock { $0.reduce(0, +) } }
        var count: Int { values.withLock { $0.count } }
    }

    struct Key: Hashable {
        var label: String
        var dimensions: [String]
    }

    let made = Mutex<[Key: Recorder]>([:])

    func recorder(_ label: String, _ dimensions: [(String, String)]) -> Recorder {
        made.withLock { made in
            let key = Key(label: label, dimensions: dimensions.map { "\($0.0)=\($0.1)" })
            if let known = made[key] { return known }
            let recorder = Recorder()
            made[key] = recorder
            return recorder
        }
    }

    func lookup(_ label: String, _ dimensions: [String]) -> Recorder? {
        made.withLock { $0[Key(label: label, dimensions: dimensions)] }
    }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler { recorder(label, dimensions) }
    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        recorder(label, dimensions)
    }
    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        recorder(label, dimensions)
    }
    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler { recorder(label, dimensions) }
    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler { recorder(label, dimensions) }
    func destroyCounter(_ handler: any CounterHandler) {}
    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {}
    func destroyRecorder(_ handler: any RecorderHandler) {}
    func destroyMeter(_ handler: any MeterHandler) {}
    func destroyTimer(_ handler: any TimerHandler) {}
}

@Suite struct ClientMetricsTests {
    @Test func producerMetricsCarryClientAndTopicDimensions() throws {
        let factory = RecordingMetrics()
        var metrics = ProducerMetrics(clientId: "app-1", factory: factory)
        metrics.topic("orders").recordsSent.increment(by: 3)
        metrics.topic("orders").recordsSent.increment(by: 2)
        metrics.topic("payments").recordErrors.increment(by: 1)
        metrics.batchesSent.increment()

        let orders = try #require(
            factory.lookup("once_client_producer_records_sent_total", ["client_id=app-1", "topic=orders"]))
        #expect(orders.total == 5, "one handle per topic, kept across calls")
        #expect(factory.lookup("once_client_producer_record_errors_total", ["client_id=app-1", "topic=payments"])?.total == 1)
        #expect(factory.lookup("once_client_producer_records_sent_total", ["client_id=app-1", "topic=payments"])?.total == 0)
        #expect(factory.lookup("once_client_producer_batches_sent_total", ["client_id=app-1"])?.total == 1)
        #expect(factory.lookup("once_client_producer_delivery_latency_seconds", ["client_id=app-1", "topic=orders"]) != nil)
        #expect(factory.lookup("once_client_producer_request_latency_seconds", ["client_id=app-1"]) != nil)
    }

    @Test func consumerMetricsCarryClientAndTopicDimensions() throws {
        let factory = RecordingMetrics()
        var metrics = ConsumerMetrics(clientId: "app-2", factory: factory)
        metrics.topic("orders").records.increment(by: 4)
        metrics.topic("orders").bytes.increment(by: 40)
        #expect(factory.lookup("once_client_consumer_records_total", ["client_id=app-2", "topic=orders"])?.total == 4)
        #expect(factory.lookup("once_client_consumer_bytes_total", ["client_id=app-2", "topic=orders"])?.total == 40)
        #expect(factory.lookup("once_client_consumer_fetch_latency_seconds", ["client_id=app-2"]) != nil)
    }

    @Test func aTimerRecordsTheIntervalSinceItsStart() throws {
        let factory = RecordingMetrics()
        let timer = Timer(label: "t", dimensions: [], factory: factory)
        let start = ContinuousClock.now - .milliseconds(1500)
        timer.recordInterval(since: start)
        let recorded = try #require(factory.lookup("t", [])).total
        // At least the 1.5 s that had passed before the call; an upper bound would time the machine.
        #expect(recorded >= 1_500_000_000)
    }
}
