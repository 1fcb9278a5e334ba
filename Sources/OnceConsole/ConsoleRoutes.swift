import KafkaProtocol
import Logging
import NIOPosix
import OnceBroker

/// The console's URLs: pages at `/`, `/topics`, `/transactions`, `/groups`; the same data as JSON
/// under `/api/`; and the one write, aborting a hanging transaction, which takes a POST (a page
/// shows what it will do first; a link or a prefetch cannot trigger it).
///
/// Snapshots take broker locks and an abort writes a marker to the log, so both run on NIO's
/// blocking thread pool: never on an event loop, and never tying up Swift's cooperative threads.
struct ConsoleRoutes: Sendable {
    let view: BrokerView
    let history: LagHistory
    let logger: Logger
    let threadPool: NIOThreadPool

    func router() -> ConsoleRouter {
        var router = ConsoleRouter()
        router.get("/") { _ in try await self.html { ConsolePages.health($0) } }
        router.get("/topics") { _ in try await self.html { ConsolePages.topics($0) } }
        router.get("/transactions") { _ in try await self.html { ConsolePages.transactions($0) } }
        router.get("/groups") { _ in try await self.html { ConsolePages.groups($0, history: self.history) } }
        router.get("/transactions/abort") { request in
            guard let target = AbortTarget(request.query) else { return Self.missingTarget }
            return .html(ConsolePages.confirmAbort(
                topic: target.topic, partition: target.partition, producerId: target.producerId, producerEpoch: target.producerEpoch))
        }
        router.post("/transactions/abort") { request in
            guard let target = AbortTarget(request.query) else { return Self.missingTarget }
            guard let code = try await self.abort(target) else { return .html(ConsolePages.starting(), status: .serviceUnavailable) }
            return .html(ConsolePages.abortResult(topic: target.topic, partition: target.partition, error: code.name))
        }

        router.get("/api/snapshot") { _ in try await self.json { $0 } }
        router.get("/api/health") { _ in try await self.json { $0.health } }
        router.get("/api/topics") { _ in try await self.json { $0.topics } }
        router.get("/api/transactions") { _ in try await self.json { TransactionsBody(open: $0.transactions, hanging: $0.hanging) } }
        router.get("/api/groups") { _ in try await self.json { $0.groups } }
        router.get("/api/groups/lag-history") { _ in .json(self.history.all) }
        router.post("/api/transactions/abort-hanging") { request in
            guard let target = AbortTarget(request.query) else { return Self.missingTarget }
            guard let code = try await self.abort(target) else { return Self.unavailable }
            return .json(AbortBody(errorCode: code.rawValue, error: code.name), status: code == .none ? .ok : .conflict)
        }
        return router
    }

    private struct TransactionsBody: Encodable {
        var open: [BrokerSnapshot.OpenTransaction]
        var hanging: [BrokerSnapshot.HangingTransaction]
    }

    private struct AbortBody: Encodable {
        var errorCode: Int16
        var error: String
    }

    /// Which partition's transaction to abort, from the query string.
    struct AbortTarget: Sendable, Equatable {
        var topic: String
        var partition: Int32
        var producerId: Int64
        var producerEpoch: Int16

        init?(_ query: [String: String]) {
            guard let topic = query["topic"], !topic.isEmpty, let partition = query["partition"].flatMap(Int32.init),
                let producerId = query["producerId"].flatMap(Int64.init),
                let producerEpoch = query["producerEpoch"].flatMap(Int16.init)
            else { return nil }
            self.topic = topic
            self.partition = partition
            self.producerId = producerId
            self.producerEpoch = producerEpoch
        }
    }

    private static let missingTarget = ConsoleResponse.error(
        .badRequest, "topic, partition, producerId and producerEpoch are required")
    private static let unavailable = ConsoleResponse.error(.serviceUnavailable, "the broker is not serving")

    private func abort(_ target: AbortTarget) async throws -> ErrorCode? {
        let view = self.view
        let code = try await threadPool.runIfActive {
            try view.abortHanging(
                topic: target.topic, partition: target.partition, producerId: target.producerId, producerEpoch: target.producerEpoch)
        }
        if let code {
            logger.notice("console abort of a hanging transaction", metadata: [
                "partition": "\(target.topic)-\(target.partition)", "producer": "\(target.producerId)", "result": "\(code.name)",
            ])
        }
        return code
    }

    private func snapshot() async throws -> BrokerSnapshot? {
        let view = self.view
        return try await threadPool.runIfActive { try view.snapshot() }
    }

    private func html(_ render: (BrokerSnapshot) -> String) async throws -> ConsoleResponse {
        guard let snapshot = try await snapshot() else { return .html(ConsolePages.starting(), status: .serviceUnavailable) }
        return .html(render(snapshot))
    }

    private func json(_ select: (BrokerSnapshot) -> some Encodable) async throws -> ConsoleResponse {
        guard let snapshot = try await snapshot() else { return Self.unavailable }
        return .json(select(snapshot))
    }
}
