import Foundation
import Hummingbird
import HummingbirdCore
import KafkaProtocol
import Logging
import NIOCore
import OnceBroker

/// The console's URLs: pages at `/`, `/topics`, `/transactions`, `/groups`; the same data as JSON
/// under `/api/`; and the one write, aborting a hanging transaction, which takes a POST (a page
/// shows what it will do first; a link or a prefetch cannot trigger it).
struct ConsoleRoutes: Sendable {
    let view: BrokerView
    let history: LagHistory
    let logger: Logger

    func register(on router: Router<BasicRequestContext>) {
        router.get("/") { _, _ in try self.html { ConsolePages.health($0) } }
        router.get("/topics") { _, _ in try self.html { ConsolePages.topics($0) } }
        router.get("/transactions") { _, _ in try self.html { ConsolePages.transactions($0) } }
        router.get("/groups") { _, _ in try self.html { ConsolePages.groups($0, history: self.history) } }
        router.get("/transactions/abort") { request, _ in
            guard let target = AbortTarget(request.uri) else { return Self.badRequest("topic, partition, producerId and producerEpoch are required") }
            return Self.htmlResponse(ConsolePages.confirmAbort(
                topic: target.topic, partition: target.partition, producerId: target.producerId, producerEpoch: target.producerEpoch))
        }
        router.post("/transactions/abort") { request, _ in
            guard let target = AbortTarget(request.uri) else { return Self.badRequest("topic, partition, producerId and producerEpoch are required") }
            guard let code = try self.abort(target) else { return Self.htmlResponse(ConsolePages.starting(), status: .serviceUnavailable) }
            return Self.htmlResponse(ConsolePages.abortResult(topic: target.topic, partition: target.partition, error: code.name))
        }

        router.get("/api/snapshot") { _, _ in try self.json { $0 } }
        router.get("/api/health") { _, _ in try self.json { $0.health } }
        router.get("/api/topics") { _, _ in try self.json { $0.topics } }
        router.get("/api/transactions") { _, _ in try self.json { TransactionsBody(open: $0.transactions, hanging: $0.hanging) } }
        router.get("/api/groups") { _, _ in try self.json { $0.groups } }
        router.get("/api/groups/lag-history") { _, _ in Self.jsonResponse(self.history.all) }
        router.post("/api/transactions/abort-hanging") { request, _ in
            guard let target = AbortTarget(request.uri) else { return Self.badRequest("topic, partition, producerId and producerEpoch are required") }
            guard let code = try self.abort(target) else { return Self.unavailable() }
            return Self.jsonResponse(AbortBody(errorCode: code.rawValue, error: code.name), status: code == .none ? .ok : .conflict)
        }
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
    private struct AbortTarget {
        var topic: String
        var partition: Int32
        var producerId: Int64
        var producerEpoch: Int16

        init?(_ uri: URI) {
            let q = uri.queryParameters
            guard let topic = q.get("topic"), !topic.isEmpty, let partition = q.get("partition", as: Int32.self),
                let producerId = q.get("producerId", as: Int64.self), let producerEpoch = q.get("producerEpoch", as: Int16.self)
            else { return nil }
            self.topic = topic
            self.partition = partition
            self.producerId = producerId
            self.producerEpoch = producerEpoch
        }
    }

    private func abort(_ target: AbortTarget) throws -> ErrorCode? {
        let code = try view.abortHanging(
            topic: target.topic, partition: target.partition, producerId: target.producerId, producerEpoch: target.producerEpoch)
        if let code {
            logger.notice("console abort of a hanging transaction", metadata: [
                "partition": "\(target.topic)-\(target.partition)", "producer": "\(target.producerId)", "result": "\(code.name)",
            ])
        }
        return code
    }

    private func html(_ render: (BrokerSnapshot) -> String) throws -> Response {
        guard let snapshot = try view.snapshot() else { return Self.htmlResponse(ConsolePages.starting(), status: .serviceUnavailable) }
        return Self.htmlResponse(render(snapshot))
    }

    private func json(_ select: (BrokerSnapshot) -> some Encodable) throws -> Response {
        guard let snapshot = try view.snapshot() else { return Self.unavailable() }
        return Self.jsonResponse(select(snapshot))
    }

    static func htmlResponse(_ html: String, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("null".utf8)
        return Response(
            status: status, headers: [.contentType: "application/json", .cacheControl: "no-store"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func badRequest(_ message: String) -> Response {
        jsonResponse(["error": message], status: .badRequest)
    }

    static func unavailable() -> Response {
        jsonResponse(["error": "the broker is not serving"], status: .serviceUnavailable)
    }
}
