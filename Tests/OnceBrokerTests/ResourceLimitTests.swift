import KafkaProtocol
import NIOCore
import OnceStorage
import Synchronization
import Testing

@testable import OnceBroker

/// The broker's resource limits that need no socket: auto-creation's pace and cap, the Fetch size
/// cap, and the shared bookkeeping behind the connection limits and the request-bytes budget.
@Suite("Resource limits")
struct ResourceLimitTests {
    @Test func tokenBucketAllowsABurstThenTheRate() {
        var bucket = TokenBucket(ratePerSecond: 10, burst: 10)
        let t0: Int64 = 1_000_000
        var granted = 0
        for _ in 0..<10 where bucket.tryTake(1, nowMs: t0) { granted += 1 }
        #expect(granted == 10)
        // (cost, time) -> allowed: 100 ms at 10/s refills one token, a long pause refills only up to
        // the burst, and a clock that steps back neither refills nor breaks the bucket.
        let steps: [(Double, Int64)] = [(1, t0), (1, t0 + 50), (1, t0 + 100), (1, t0 + 100), (10, t0 + 60_000), (1, t0 + 60_000), (1, t0)]
        var results: [Bool] = []
        for (cost, time) in steps { results.append(bucket.tryTake(cost, nowMs: time)) }
        #expect(results == [false, false, true, false, true, false, false])
    }

    @Test func tokenBucketLetsACostAboveTheBurstThroughWhenFull() {
        var bucket = TokenBucket(ratePerSecond: 2, burst: 2)
        var results: [Bool] = []
        for time: Int64 in [0, 500, 1_000] { results.append(bucket.tryTake(5, nowMs: time)) }
        #expect(results == [true, false, true])
    }

    @Test func refusedAutoCreationsAreLoggedOnceASecondWithTheirCount() {
        let now = Synchronization.Mutex<Int64>(5_000)
        let limiter = AutoCreateLimiter(partitionsPerSecond: 1, clock: { now.withLock { $0 } })
        var logged: [Int?] = []
        for _ in 0..<3 { logged.append(limiter.refusalToLog()) }
        now.withLock { $0 += 1_000 }
        logged.append(limiter.refusalToLog())
        #expect(logged == [1, nil, nil, 3])
    }

    static func metadata(_ names: [String]) -> MetadataRequest {
        var req = MetadataRequest()
        req.topics = names.map {
            var t = MetadataRequest.MetadataRequestTopic()
            t.name = $0
            return t
        }
        req.allowAutoTopicCreation = true
        return req
    }

    @Test func autoCreationStopsAtTheRate() async throws {
        let h = BrokerHarness { c in c.autoCreatePartitionsPerSecond = 3 }
        let response = try #require(try await h.send(Self.metadata((0..<5).map { "t\($0)" }), version: 9))
        let codes = response.topics.map { ErrorCode($0.errorCode) }
        // The first second's burst creates three; the rest are refused as unknown, not created.
        #expect(codes == [.none, .none, .none, .unknownTopicOrPartition, .unknownTopicOrPartition])
        #expect(h.storage.topics().map(\.name).filter { $0.hasPrefix("t") } == ["t0", "t1", "t2"])
    }

    @Test func autoCreationStopsAtThePartitionCapButCreateTopicsDoesNot() async throws {
        let h = BrokerHarness { c in
            c.autoCreateMaxPartitions = 4
            c.defaultPartitions = 2
        }
        try h.storage.createTopic(name: "existing", partitions: 2, configs: [:])
        let response = try #require(try await h.send(Self.metadata(["a", "b", "existing"]), version: 9))
        #expect(response.topics.map { ErrorCode($0.errorCode) } == [.none, .unknownTopicOrPartition, .none])
        #expect(h.storage.topic(named: "b") == nil)
        var create = CreateTopicsRequest()
        var topic = CreateTopicsRequest.CreatableTopic()
        topic.name = "explicit"
        topic.numPartitions = 3
        topic.replicationFactor = 1
        create.topics = [topic]
        create.timeoutMs = 5_000
        let created = try #require(try await h.send(create, version: 5))
        #expect(created.topics[0].errorCode == ErrorCode.none.rawValue)
    }

    @Test func fetchIsCappedByFetchMaxBytesButReturnsTheFirstBatch() async throws {
        let value = String(repeating: "x", count: 3_000)
        let h = BrokerHarness { c in c.fetchMaxBytes = 8_000 }
        for _ in 0..<10 { _ = try await h.produce(topic: "big", values: [value]) }
        let capped = try await h.fetch(topic: "big", offset: 0, maxBytes: Int32.max)
        let records = try #require(capped.records)
        #expect(records.readableBytes <= 8_000)
        #expect(try BrokerHarness.values(records).map(\.offset) == [0, 1])

        // One batch larger than the cap still comes back whole, so a consumer can move past it.
        let small = BrokerHarness { c in c.fetchMaxBytes = 100 }
        _ = try await small.produce(topic: "big", values: [value])
        let one = try await small.fetch(topic: "big", offset: 0, maxBytes: Int32.max)
        #expect(try BrokerHarness.values(one.records).map(\.offset) == [0])
    }

    @Test func connectionLimiterCountsTotalAndPerAddress() {
        let limiter = ConnectionLimiter(maxTotal: 3, maxPerAddress: 2)
        #expect(limiter.admit("10.0.0.1") == nil)
        #expect(limiter.admit("10.0.0.1") == nil)
        #expect(limiter.admit("10.0.0.1")?.description.contains("max.connections.per.ip") == true)
        #expect(limiter.admit("10.0.0.2") == nil)
        #expect(limiter.admit("10.0.0.3")?.description.contains("max.connections") == true)
        limiter.release("10.0.0.1")
        #expect(limiter.openConnections == 2)
        #expect(limiter.admit("10.0.0.1") == nil)
        #expect(limiter.admit("10.0.0.2")?.description.contains("(max.connections)") == true)
    }

    @Test func budgetWakesWaitersOnlyWhenThereIsRoom() {
        let budget = RequestBytesBudget(limit: 100)
        budget.charge(150)
        #expect(!budget.hasRoom)
        let woken = Counter()
        budget.whenRoom { woken.increment() }
        budget.whenRoom { woken.increment() }
        budget.release(40)  // 110 used: still full
        #expect(woken.value == 0)
        budget.release(20)  // 90 used
        #expect(woken.value == 2)
        budget.whenRoom { woken.increment() }  // room now: runs at once
        #expect(woken.value == 3)
        budget.release(90)
        #expect(budget.used == 0)
    }
}

private final class Counter: Sendable {
    private let state = Synchronization.Mutex(0)
    func increment() { state.withLock { $0 += 1 } }
    var value: Int { state.withLock { $0 } }
}
