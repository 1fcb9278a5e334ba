import KafkaProtocol
import NIOCore
@testable import OnceBroker
import OnceStorage
import Testing

/// The scrape-time gauges and the text they are written in, without a socket.
@Suite("Broker state metrics")
struct BrokerStateMetricsTests {
    func render(_ h: BrokerHarness, connections: ConnectionLimiter = ConnectionLimiter(maxTotal: 10, maxPerAddress: 10)) -> [String] {
        String(decoding: BrokerStateMetrics(broker: h.broker, connections: connections).render(), as: UTF8.self)
            .split(separator: "\n").map(String.init)
    }

    @Test func partitionGaugesFollowTheLogAndProducerState() async throws {
        let h = BrokerHarness()
        try h.storage.createTopic(name: "plain", partitions: 1, configs: [:])
        _ = try await h.produce(topic: "plain", values: ["a", "b", "c"])
        let producerId = try await h.initProducerId().producerId
        _ = try await h.produce(
            topic: "plain", records: BrokerHarness.idempotentBatch(["d"], producerId: producerId, sequence: 0))
        let lines = render(h)
        #expect(lines.contains(#"once_partition_high_watermark{topic="plain",partition="0"} 4"#))
        let size = try #require(h.storage.partition(topic: "plain", partition: 0)?.sizeInBytes)
        #expect(size > 0)
        #expect(lines.contains(#"once_partition_log_size_bytes{topic="plain",partition="0"} \#(size)"#))
        #expect(lines.contains(#"once_partition_producers{topic="plain",partition="0"} 1"#))
        #expect(lines.contains(#"once_partition_lso_lag{topic="plain",partition="0"} 0"#))
        #expect(lines.contains("once_transactions_open 0"))
        #expect(lines.contains("once_transaction_oldest_age_seconds 0.0"))
    }

    @Test func connectionsAreTheLimiterCount() {
        let h = BrokerHarness()
        let limiter = ConnectionLimiter(maxTotal: 10, maxPerAddress: 10)
        #expect(limiter.admit("127.0.0.1") == nil)
        #expect(limiter.admit("127.0.0.2") == nil)
        #expect(render(h, connections: limiter).contains("once_connections 2"))
        limiter.release("127.0.0.1")
        #expect(render(h, connections: limiter).contains("once_connections 1"))
    }

    @Test func labelValuesAreEscaped() {
        var text = PrometheusText()
        text.sample("g", [("group", "a\"b\\c\nd")], Int64(1))
        #expect(String(decoding: text.bytes, as: UTF8.self) == #"g{group="a\"b\\c\nd"} 1"# + "\n")
    }

    @Test func cpuTimeIsReadAfterTheCommandName() {
        // A command name may hold spaces and parentheses; fields count from the last ')'.
        let stat = "4242 (once (x) y) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 123 456 789"
        #expect(ProcessMetrics.cpuSeconds(stat: stat, ticksPerSecond: 100) == 3.0)
        #expect(ProcessMetrics.cpuSeconds(stat: "garbage", ticksPerSecond: 100) == nil)
        #expect(ProcessMetrics.residentPages(statm: "1000 250 30 1 0 100 0\n") == 250)
    }
}
