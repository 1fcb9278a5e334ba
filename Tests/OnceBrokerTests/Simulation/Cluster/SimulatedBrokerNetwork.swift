import KafkaProtocol
import NIOConcurrencyHelpers
import NIOCore
@testable import OnceBroker
import OnceCore

/// The network between the simulated brokers: what each one's `InterBrokerTransport` sends
/// (the coordinator's WriteTxnMarkers, a partition leader's AddPartitionsToTxn v5) is framed by
/// production's `InterBrokerFrames` as `InterBrokerClient` frames it, handed to the target
/// broker's `Broker.handle` on a connection loop of the target's process (as the simulated
/// clients' requests are), and its answer decoded as production decodes it, correlation id
/// checked. The faults a real network and process give: a target that is down refuses the
/// connection at once; one paused answers nothing until it wakes; a request lost before it
/// arrives, an answer lost after the target acted on it, an answer late, a request delivered
/// twice (the copy on a second connection, its answer thrown away). A request not answered
/// within the broker's `interBrokerRequestTimeoutMs` of simulated time fails as
/// `InterBrokerError.timedOut`, as production's connection reports it.
///
/// Every step is a job of the seeded scheduler: the request on the target's connection loop, the
/// answer and the timeout on the sender's process loop (so a paused sender hears nothing until it
/// wakes, and a killed one never), and each fault is drawn from the network's own seeded stream
/// when the request is sent, so a seed replays exactly.
final class SimulatedBrokerNetwork: @unchecked Sendable {
    /// The live process of a node: the owner of its jobs and its broker; nil when it is down.
    typealias Target = (Int32) -> (owner: Int, broker: Broker)?

    private let scheduler: SimulatedScheduler
    /// Set by the world once its nodes exist.
    var target: Target = { _ in nil }
    private var rng: SplitMix64
    var lostRequestChance = 0.03
    var lostAnswerChance = 0.03
    var duplicateChance = 0.04
    var delayChance = 0.08
    /// Test-only defect: the network answers WriteTxnMarkers with NONE for every partition and
    /// delivers nothing, so a coordinator takes markers for partitions led elsewhere as written.
    var claimsMarkersWritten = false

    struct Counts: Equatable, CustomStringConvertible {
        var markerRequests = 0
        var checkRequests = 0
        var refused = 0
        var lostRequests = 0
        var lostAnswers = 0
        var duplicates = 0
        var delayed = 0
        var timedOut = 0
        var description: String {
            "markers \(markerRequests), checks \(checkRequests), refused \(refused), lost requests \(lostRequests), lost answers \(lostAnswers), duplicates \(duplicates), delayed \(delayed), timed out \(timedOut)"
        }
    }
    private(set) var counts = Counts()

    /// One sender process's connection to one target process.
    private final class Connection: @unchecked Sendable {
        let loop: SimulatedEventLoop
        let session = ConnectionSession.plaintext()
        var frames: InterBrokerFrames
        /// The last answer written: a broker answers a connection's requests in order.
        var answered: EventLoopFuture<Void>
        /// Closed by its sender after a timeout, as production's connection is: what the target
        /// answers on it afterwards reaches no one, and the next request opens a new one.
        var closed = false
        init(loop: SimulatedEventLoop, clientId: String) {
            self.loop = loop
            frames = InterBrokerFrames(clientId: clientId)
            answered = loop.makeSucceededVoidFuture()
        }
    }
    private var connections: [String: Connection] = [:]

    init(scheduler: SimulatedScheduler, seed: UInt64) {
        self.scheduler = scheduler
        rng = SplitMix64(seed: seed ^ 0x6a09_e667_f3bc_c908)
    }

    /// The transport of one broker process, its answers and timeouts on `loop` (the process's own).
    func transport(from nodeId: Int32, owner: Int, loop: SimulatedEventLoop, requestTimeoutMs: Int64) -> Transport {
        Transport(network: self, nodeId: nodeId, owner: owner, loop: loop, requestTimeoutMs: requestTimeoutMs)
    }

    struct Transport: InterBrokerTransport, @unchecked Sendable {
        let network: SimulatedBrokerNetwork
        let nodeId: Int32
        let owner: Int
        let loop: SimulatedEventLoop
        let requestTimeoutMs: Int64

        func send<R: KafkaRequest>(_ request: R, version: Int16, to target: Int32) async throws -> R.Response {
            try await withCheckedThrowingContinuation { continuation in
                network.send(request, version: version, from: self, to: target, Reply(continuation))
            }
        }
    }

    /// Resumes its caller once: with the answer, or with the failure that came first.
    private final class Reply<Response: Sendable>: @unchecked Sendable {
        private var continuation: CheckedContinuation<Response, any Error>?
        var timer: Int?
        init(_ continuation: CheckedContinuation<Response, any Error>) { self.continuation = continuation }
        var waiting: Bool { continuation != nil }
        func resume(_ result: Result<Response, any Error>) {
            guard let continuation else { return }
            self.continuation = nil
            continuation.resume(with: result)
        }
    }

    private func send<R: KafkaRequest>(
        _ request: R, version: Int16, from sender: Transport, to nodeId: Int32, _ reply: Reply<R.Response>
    ) {
        // Drawn whatever happens next, so one request always takes as many draws.
        let losesRequest = rng.chance(lostRequestChance)
        let losesAnswer = rng.chance(lostAnswerChance)
        let duplicates = rng.chance(duplicateChance)
        let delay = rng.chance(delayChance) ? Int64.random(in: 1...(sender.requestTimeoutMs * 3 / 2), using: &rng) : 0
        if R.apiKey == WriteTxnMarkersRequest.apiKey { counts.markerRequests += 1 } else { counts.checkRequests += 1 }
        if claimsMarkersWritten, let markers = request as? WriteTxnMarkersRequest, let claimed = WriteTxnMarkersResponse.allWritten(markers) as? R.Response {
            sender.loop.execute { reply.resume(.success(claimed)) }
            return
        }
        guard let (owner, broker) = target(nodeId) else {
            counts.refused += 1
            sender.loop.execute {
                reply.resume(.failure(InterBrokerError(kind: .connectFailed, description: "broker \(nodeId) refused the connection")))
            }
            return
        }
        let connection = self.connection(sender, to: owner, nodeId: nodeId, copy: false)
        reply.timer = scheduler.schedule(on: sender.loop.id, afterMs: sender.requestTimeoutMs) { [self] in
            guard reply.waiting else { return }
            counts.timedOut += 1
            close(connection)
            reply.resume(.failure(InterBrokerError(
                kind: .timedOut, description: "broker \(nodeId) did not answer within \(sender.requestTimeoutMs) ms")))
        }
        if losesRequest {
            counts.lostRequests += 1
            return
        }
        deliver(request, version: version, from: sender, on: connection, broker) { [self] answer in
            if losesAnswer {
                counts.lostAnswers += 1
                return
            }
            if delay > 0 { counts.delayed += 1 }
            _ = scheduler.schedule(on: sender.loop.id, afterMs: delay) { [self] in
                guard reply.waiting else { return }
                if let timer = reply.timer { _ = scheduler.cancel(timer: timer) }
                reply.resume(answer)
            }
        }
        if duplicates {
            counts.duplicates += 1
            deliver(request, version: version, from: sender, on: self.connection(sender, to: owner, nodeId: nodeId, copy: true), broker) { _ in }
        }
    }

    private func close(_ connection: Connection) {
        connection.closed = true
        connections = connections.filter { $0.value !== connection }
    }

    private func connection(_ sender: Transport, to owner: Int, nodeId: Int32, copy: Bool) -> Connection {
        let key = "\(sender.owner)->\(owner)\(copy ? " copy" : "")"
        if let known = connections[key] { return known }
        let made = Connection(loop: scheduler.makeLoop(owner: owner), clientId: "once-broker-\(sender.nodeId)")
        connections[key] = made
        return made
    }

    /// The frame production sends, handled by the target as a connection hands it over (without
    /// its size prefix), the answer decoded as production decodes it, in the connection's order.
    private func deliver<R: KafkaRequest>(
        _ request: R, version: Int16, from sender: Transport, on connection: Connection, _ broker: Broker,
        _ answered: @escaping @Sendable (Result<R.Response, any Error>) -> Void
    ) {
        let (correlationId, sized) = connection.frames.encode(request, version: version, allocator: ByteBufferAllocator())
        let frame = sized.getSlice(at: sized.readerIndex + 4, length: sized.readableBytes - 4)!
        connection.loop.execute {
            let handled: EventLoopFuture<ByteBuffer?>
            do {
                handled = try broker.handle(frame: frame, eventLoop: connection.loop, session: connection.session)
            } catch {
                // The broker closes a connection it cannot serve.
                return answered(.failure(InterBrokerError(kind: .closed, description: "broker closed the connection: \(error)")))
            }
            let inOrder = connection.answered.flatMap { handled }
            connection.answered = inOrder.map { _ in }.recover { _ in }
            inOrder.whenComplete { result in
                guard !connection.closed else { return }
                answered(Result {
                    guard var bytes = try result.get() else {
                        throw InterBrokerError(kind: .closed, description: "no answer to correlation id \(correlationId)")
                    }
                    bytes.moveReaderIndex(forwardBy: 4)
                    guard InterBrokerFrames.correlationId(of: bytes) == correlationId else {
                        throw InterBrokerError(kind: .outOfStep, description: "answer out of step with correlation id \(correlationId)")
                    }
                    return try InterBrokerFrames.decode(R.self, version: version, frame: bytes)
                })
            }
        }
    }
}
