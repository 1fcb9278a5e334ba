import NIOHTTP1

/// Paths to handlers, per method. A path the console does not serve is 404; a path it serves
/// with another method is 405 with the methods it takes in `Allow` (RFC 9110 15.5.6), so a GET
/// of the abort action cannot abort anything.
struct ConsoleRouter: Sendable {
    typealias Handler = @Sendable (ConsoleRequest) async throws -> ConsoleResponse

    /// Keyed by method name: `HTTPMethod` is not `Hashable`.
    private var routes: [String: [String: Handler]] = [:]

    mutating func get(_ path: String, _ handler: @escaping Handler) {
        routes[path, default: [:]][HTTPMethod.GET.rawValue] = handler
    }

    mutating func post(_ path: String, _ handler: @escaping Handler) {
        routes[path, default: [:]][HTTPMethod.POST.rawValue] = handler
    }

    func respond(to request: ConsoleRequest) async -> ConsoleResponse {
        guard let methods = routes[request.path] else {
            return .error(.notFound, "no such page: \(request.path)")
        }
        guard let handler = methods[request.method.rawValue] else {
            var response = ConsoleResponse.error(.methodNotAllowed, "\(request.path) does not take \(request.method)")
            let allowed = methods.keys.sorted().joined(separator: ", ")
            response.headers.append(("Allow", allowed))
            return response
        }
        do {
            return try await handler(request)
        } catch {
            return .error(.internalServerError, "\(error)")
        }
    }
}
