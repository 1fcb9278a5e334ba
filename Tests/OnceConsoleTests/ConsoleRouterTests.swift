import Logging
import NIOHTTP1
import NIOPosix
import OnceBroker
@testable import OnceConsole
import Testing

@Suite("Console routing and request limits")
struct ConsoleRouterTests {
    /// The console's own routes over a view with no broker attached: every route that needs the
    /// broker answers 503, so these tests see the routing alone.
    static let router = ConsoleRoutes(
        view: BrokerView(), history: LagHistory(samplesKept: 2), logger: Logger(label: "test"), threadPool: .singleton
    ).router()

    @Test("an unknown path is 404")
    func unknownPath() async {
        let response = await Self.router.respond(to: ConsoleRequest(method: .GET, path: "/nope"))
        #expect(response.status == .notFound)
    }

    @Test("a served path with another method is 405 naming the methods it takes")
    func wrongMethod() async {
        let abort = await Self.router.respond(to: ConsoleRequest(method: .GET, path: "/api/transactions/abort-hanging"))
        #expect(abort.status == .methodNotAllowed)
        #expect(abort.headers.contains { $0 == ("Allow", "POST") })
        let page = await Self.router.respond(to: ConsoleRequest(method: .DELETE, path: "/topics"))
        #expect(page.status == .methodNotAllowed)
        #expect(page.headers.contains { $0 == ("Allow", "GET") })
        let both = await Self.router.respond(to: ConsoleRequest(method: .PUT, path: "/transactions/abort"))
        #expect(both.headers.contains { $0 == ("Allow", "GET, POST") })
    }

    @Test("routes that read the broker answer 503 until one is attached")
    func notServing() async {
        for path in ["/", "/topics", "/api/health", "/api/snapshot"] {
            let response = await Self.router.respond(to: ConsoleRequest(method: .GET, path: path))
            #expect(response.status == .serviceUnavailable, "\(path)")
        }
        let abort = await Self.router.respond(to: ConsoleRequest(
            method: .POST, path: "/api/transactions/abort-hanging",
            query: ["topic": "t", "partition": "0", "producerId": "1", "producerEpoch": "0"]))
        #expect(abort.status == .serviceUnavailable)
    }

    @Test("the abort needs every part of its target")
    func abortTarget() async {
        let response = await Self.router.respond(to: ConsoleRequest(
            method: .POST, path: "/api/transactions/abort-hanging", query: ["topic": "t", "partition": "0"]))
        #expect(response.status == .badRequest)
        #expect(ConsoleRoutes.AbortTarget(["topic": "t", "partition": "x", "producerId": "1", "producerEpoch": "0"]) == nil)
        #expect(ConsoleRoutes.AbortTarget(["topic": "t", "partition": "2", "producerId": "1", "producerEpoch": "0"])?.partition == 2)
    }

    @Test("the target's path and query are percent-decoded")
    func requestTarget() throws {
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "/transactions/abort?topic=a%20b%26c&partition=3")
        let request = try #require(ConsoleRequest(head: head))
        #expect(request.path == "/transactions/abort")
        #expect(request.query == ["topic": "a b&c", "partition": "3"])
        #expect(ConsoleRequest(head: HTTPRequestHead(version: .http1_1, method: .GET, uri: "http://elsewhere/")) == nil)
    }

    @Test("a body over the limit is refused with 413 whether declared or streamed")
    func bodyLimit() {
        var declared = ConsoleRequestReader(maxBodyBytes: 10)
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/x")
        head.headers.add(name: "Content-Length", value: "11")
        guard case .refuse(.payloadTooLarge, _) = declared.read(.head(head)) else {
            Issue.record("a declared 11-byte body passed a 10-byte limit")
            return
        }

        var streamed = ConsoleRequestReader(maxBodyBytes: 10)
        let chunked = HTTPRequestHead(version: .http1_1, method: .POST, uri: "/x")
        #expect(streamed.read(.head(chunked)) == .more)
        #expect(streamed.read(.body(.init(bytes: [UInt8](repeating: 1, count: 10)))) == .more)
        guard case .refuse(.payloadTooLarge, _) = streamed.read(.body(.init(bytes: [1]))) else {
            Issue.record("an 11th body byte passed a 10-byte limit")
            return
        }

        var fits = ConsoleRequestReader(maxBodyBytes: 10)
        #expect(fits.read(.head(chunked)) == .more)
        #expect(fits.read(.body(.init(bytes: [UInt8](repeating: 1, count: 10)))) == .more)
        #expect(fits.read(.end(nil)) == .request(.init(head: chunked)))
        #expect(fits.read(.head(chunked)) == .more, "the next request on the connection starts afresh")
    }
}
