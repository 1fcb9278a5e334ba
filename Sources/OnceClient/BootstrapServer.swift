/// A `host:port` from a bootstrap list such as `127.0.0.1:9092,[::1]:9093`.
public struct BootstrapServer: Hashable, Sendable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses one entry; a bracketed host is IPv6. The port is required, as in every Kafka client.
    public init?(_ text: some StringProtocol) {
        var text = Substring(text)
        while text.first?.isWhitespace == true { text.removeFirst() }
        while text.last?.isWhitespace == true { text.removeLast() }
        guard let colon = text.lastIndex(of: ":"),
            let port = Int(text[text.index(after: colon)...]), (1...65535).contains(port)
        else { return nil }
        var host = text[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") {
            host = host.dropFirst().dropLast()
        }
        guard !host.isEmpty else { return nil }
        self.init(host: String(host), port: port)
    }

    /// Parses a comma-separated list; nil if any entry is malformed or the list is empty.
    public static func parseList(_ text: String) -> [BootstrapServer]? {
        let entries = text.split(separator: ",").map { BootstrapServer($0) }
        guard !entries.isEmpty, entries.allSatisfy({ $0 != nil }) else { return nil }
        return entries.compactMap { $0 }
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
