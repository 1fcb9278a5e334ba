import Foundation
import NIOHTTP1

/// A complete answer: the console renders every page and JSON body before writing, so a response
/// is plain data handed to the connection.
struct ConsoleResponse: Sendable {
    var status: HTTPResponseStatus
    var headers: [(String, String)]
    var body: [UInt8]

    static func html(_ html: String, status: HTTPResponseStatus = .ok) -> ConsoleResponse {
        ConsoleResponse(
            status: status, headers: [("Content-Type", "text/html; charset=utf-8"), ("Cache-Control", "no-store")],
            body: Array(html.utf8))
    }

    static func json(_ value: some Encodable, status: HTTPResponseStatus = .ok) -> ConsoleResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = (try? encoder.encode(value)) ?? Data("null".utf8)
        return ConsoleResponse(
            status: status, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            body: Array(data))
    }

    /// Errors are JSON for every path: a browser shows the text, a script reads the field.
    static func error(_ status: HTTPResponseStatus, _ message: String) -> ConsoleResponse {
        json(["error": message], status: status)
    }
}
