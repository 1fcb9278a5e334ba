import Foundation
import NIOHTTP1

/// One request as the routes see it: method, decoded path and query. The body is never kept:
/// the console's one write takes its parameters in the query, so a body is only counted against
/// the limit.
struct ConsoleRequest: Sendable {
    var method: HTTPMethod
    var path: String
    var query: [String: String]

    init(method: HTTPMethod, path: String, query: [String: String] = [:]) {
        self.method = method
        self.path = path
        self.query = query
    }

    /// Nil for a target that is not an origin-form URI (`/path?query`).
    init?(head: HTTPRequestHead) {
        guard head.uri.hasPrefix("/"), let components = URLComponents(string: head.uri) else { return nil }
        var query: [String: String] = [:]
        for item in components.queryItems ?? [] where query[item.name] == nil {
            query[item.name] = item.value ?? ""
        }
        self.init(method: head.method, path: components.path, query: query)
    }
}
