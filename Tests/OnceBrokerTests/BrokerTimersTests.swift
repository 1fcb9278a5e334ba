import KafkaProtocol
import NIOConcurrencyHelpers
import NIOCore
@testable import OnceBroker
import OnceCore
import Testing

/// The broker's timers go through its runtime: on the seeded scheduler they fire at simulated
/// time, so the periodic work the simulator exercises is the broker's own timer code, started by
/// `Broker.startPeriodicWork` as `BrokerService` starts it, not work the simulator calls itself.
@Suite("Broker timers on the runtime")
struct BrokerTimersTests {
    static let topic = "out"

    @Test("a repeating timer fires once per interval of simulated time, counted from its last run, until cancelled")
    func repeatingTimerFollowsTheClock() {
        let clock = SimulatedClock()
        let scheduler = SimulatedScheduler(seed: 1, clock: clock)
        let runtime = BrokerRuntime(clock: { clock.now }, taskExecutor: scheduler, timers: scheduler, io: .inline, administration: .inline)
        let fired = NIOLockedValueBox<[Int64]>([])
        let start = clock.now
        let timer = runtime.repeating(everyMs: 100) { fired.withLockedValue { $0.append(clock.now - start) } }
        scheduler.runReady()
        #expect(fired.withLockedValue { $0 }.isEmpty)
        clock.advance(by: 99)
        scheduler.runReady()
        #expect(fired.withLockedValue { $0 }.isEmpty)
        clock.advance(by: 1)
        scheduler.runReady()
        #expect(fired.withLockedValue { $0 } == [100])
        // Several intervals at once: one run, the next counted from it, as NIO's repeated tasks.
        clock.advance(by: 350)
        scheduler.runReady()
        #expect(fired.withLockedValue { $0 } == [100, 450])
        // The scheduler never moves the clock for periodic work alone.
        #expect(scheduler.isIdle)
        timer.cancel()
        clock.advance(by: 1_000)
        scheduler.runReady()
        #expect(fired.withLockedValue { $0 } == [100, 450])
    }

    @Test("a repeating task is armed again only once its run finished")
    func repeatingTaskWaitsForItsRun() {
        let clock = SimulatedClock()
        let scheduler = SimulatedScheduler(seed: 2, clock: clock)
        let runtime = BrokerRuntime(clock: { clock.now }, taskExecutor: scheduler, timers: scheduler, io: .inline, administration: .inline)
        let runs = NIOLockedValueBox(0)
        let timer = runtime.repeatingTask(everyMs: 100) {
            // A run that waits: a request's timer, 500 ms long, which the scheduler jumps to.
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                runtime.schedule(afterMs: 500, on: scheduler.makeLoop()) { done.resume() }
            }
            runs.withLockedValue { $0 += 1 }
        }
        clock.advance(by: 100)
        scheduler.runUntilIdle()
        #expect(runs.withLockedValue { $0 } == 1)
        // 600 ms in: the next run is due 100 ms after the first finished, not at 200.
        clock.advance(by: 99)
        scheduler.runReady()
        #expect(scheduler.isIdle)
        clock.advance(by: 1)
        scheduler.runUntilIdle()
        #expect(runs.withLockedValue { $0 } == 2)
        timer.cancel()
    }

    @Test("a transaction past its timeout is aborted by the broker's own timer once simulated time passes")
    func transactionTimeoutRunsOnTheTimer() async throws {
        let world = try SimulatedWorld(seed: 3, flushPolicy: .none, topics: [Self.topic: 1])
        var initRequest = InitProducerIdRequest()
        initRequest.transactionalId = "timed"
        initRequest.transactionTimeoutMs = 1_000
        initRequest.producerId = -1
        initRequest.producerEpoch = -1
        let producer = try #require(await world.deliver(world.frame(initRequest, version: 4), as: InitProducerIdResponse.self))
        try #require(producer.errorCode == 0)
        var t = AddPartitionsToTxnRequest.AddPartitionsToTxnTopic()
        t.name = Self.topic
        t.partitions = [0]
        var add = AddPartitionsToTxnRequest()
        add.v3AndBelowTransactionalId = "timed"
        add.v3AndBelowProducerId = producer.producerId
        add.v3AndBelowProducerEpoch = producer.producerEpoch
        add.v3AndBelowTopics = [t]
        let added = try #require(await world.deliver(world.frame(add, version: 3), as: AddPartitionsToTxnResponse.self))
        try #require(added.resultsByTopicV3AndBelow[0].resultsByPartition[0].partitionErrorCode == 0)
        func state() -> TransactionState? {
            world.broker.transactions.transactions.first { $0.transactionalId == "timed" }?.state
        }
        world.advanceClock(by: 500)
        #expect(state() == .ongoing, "not yet timed out")
        // Past the timeout and the next check (every second by default).
        world.advanceClock(by: 1_600)
        #expect(state() == .completeAbort)
        let fenced = try #require(world.broker.transactions.transactions.first { $0.transactionalId == "timed" })
        #expect(fenced.producerEpoch > producer.producerEpoch, "the timeout abort bumped the epoch")
    }

    @Test("a KIP-848 member whose session runs out is removed by the group coordinator's tick at simulated time")
    func groupSessionExpiresOnTheTick() async throws {
        let world = try SimulatedWorld(seed: 4, flushPolicy: .none, topics: [Self.topic: 2])
        var join = ConsumerGroupHeartbeatRequest()
        join.groupId = "timers"
        join.memberId = "member-1"
        join.memberEpoch = 0
        join.rebalanceTimeoutMs = 5_000
        join.subscribedTopicNames = [Self.topic]
        join.topicPartitions = []
        let joined = try #require(await world.deliver(world.frame(join, version: 1), as: ConsumerGroupHeartbeatResponse.self))
        try #require(joined.errorCode == 0)
        var beat = ConsumerGroupHeartbeatRequest()
        beat.groupId = "timers"
        beat.memberId = "member-1"
        beat.memberEpoch = joined.memberEpoch
        world.advanceClock(by: 40_000)
        let alive = try #require(await world.deliver(world.frame(beat, version: 1), as: ConsumerGroupHeartbeatResponse.self))
        #expect(ErrorCode(alive.errorCode) == .none, "within the session")
        // No heartbeat for longer than the session (45 s by default): only the tick can notice.
        world.advanceClock(by: 46_000)
        let gone = try #require(await world.deliver(world.frame(beat, version: 1), as: ConsumerGroupHeartbeatResponse.self))
        #expect(ErrorCode(gone.errorCode) == .unknownMemberId)
    }

    @Test("a long-polling Fetch is answered when its deadline passes on the runtime's clock, not before")
    func fetchLongPollDeadline() async throws {
        let world = try SimulatedWorld(seed: 5, flushPolicy: .none, topics: [Self.topic: 1])
        var p = FetchRequest.FetchPartition()
        p.partition = 0
        p.fetchOffset = 0
        p.partitionMaxBytes = 1 << 20
        var t = FetchRequest.FetchTopic()
        t.topic = Self.topic
        t.partitions = [p]
        var fetch = FetchRequest()
        fetch.maxWaitMs = 700
        fetch.minBytes = 1
        fetch.maxBytes = 1 << 20
        fetch.topics = [t]
        let start = world.clock.now
        let request = world.submit(world.frame(fetch, version: 12), on: "reader")
        world.quiesce()
        #expect(request.answer == nil, "parked until data or the deadline")
        let answer = try #require(world.wait(request, as: FetchResponse.self))
        #expect(world.clock.now - start == 700)
        #expect(answer.responses[0].partitions[0].records == nil || answer.responses[0].partitions[0].records?.readableBytes == 0)
    }
}
