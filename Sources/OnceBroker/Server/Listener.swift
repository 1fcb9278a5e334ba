/// One socket the broker accepts clients on, in Kafka's `NAME://host:port` form. The name is what
/// `advertised.listeners` and `listener.security.protocol.map` refer to; it equals the security
/// protocol's name unless the map gives a listener its own name (`CLIENT://...` with `CLIENT:SSL`).
public struct Listener: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var securityProtocol: SecurityProtocol
    /// What is bound; Kafka's empty host (`SSL://:9093`) binds every interface and is kept as
    /// 0.0.0.0 here.
    public var address: HostPort
    /// What Metadata, DescribeCluster and FindCoordinator hand to a client that came through this
    /// listener; nil advertises the bound address.
    public var advertised: HostPort?

    public init(name: String, securityProtocol: SecurityProtocol, address: HostPort, advertised: HostPort? = nil) {
        self.name = name
        self.securityProtocol = securityProtocol
        self.address = address
        self.advertised = advertised
    }

    /// The shorthand `--listen` stands for.
    public static func plaintext(_ address: HostPort, advertised: HostPort? = nil) -> Listener {
        Listener(name: SecurityProtocol.plaintext.rawValue, securityProtocol: .plaintext, address: address, advertised: advertised)
    }

    public var description: String { "\(name)://\(address)" }

    /// Kafka's default `listener.security.protocol.map`: each protocol's name maps to itself.
    public static let defaultProtocolMap: [String: SecurityProtocol] = Dictionary(
        uniqueKeysWithValues: SecurityProtocol.allCases.map { ($0.rawValue, $0) })

    /// Why a listener list was refused; the text names the offending entry, as the one line the
    /// operator sees at start.
    public struct ParseError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// Parses Kafka's `listeners` value. Names are case-insensitive, as Kafka normalises them to
    /// upper case; two listeners may share neither a name nor a port (Kafka's own checks).
    public static func parseList(
        _ text: String, protocolMap: [String: SecurityProtocol] = defaultProtocolMap
    ) throws -> [Listener] {
        let entries = try endpoints(text, flag: "--listeners")
        var listeners: [Listener] = []
        for (name, address) in entries {
            guard let securityProtocol = protocolMap[name] else {
                throw ParseError(
                    description:
                        "--listeners: no security protocol for listener \(name) (name it PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, or map it with --listener-security-protocol-map \(name):PROTOCOL)"
                )
            }
            guard !listeners.contains(where: { $0.name == name }) else {
                throw ParseError(description: "--listeners: listener \(name) is named twice")
            }
            if address.port != 0, let clash = listeners.first(where: { $0.address.port == address.port }) {
                throw ParseError(description: "--listeners: \(name) and \(clash.name) both use port \(address.port)")
            }
            let host = address.host.isEmpty ? "0.0.0.0" : address.host
            listeners.append(Listener(name: name, securityProtocol: securityProtocol, address: HostPort(host: host, port: address.port)))
        }
        return listeners
    }

    /// Applies Kafka's `advertised.listeners` to `listeners`, matched by name. A listener left out
    /// advertises what it binds, as Kafka does.
    public static func advertise(_ text: String, on listeners: [Listener]) throws -> [Listener] {
        var result = listeners
        var seen: Set<String> = []
        for (name, address) in try endpoints(text, flag: "--advertised-listeners") {
            guard let index = result.firstIndex(where: { $0.name == name }) else {
                throw ParseError(description: "--advertised-listeners: \(name) is not one of --listeners (\(listeners.map(\.name).joined(separator: ", ")))")
            }
            guard seen.insert(name).inserted else {
                throw ParseError(description: "--advertised-listeners: listener \(name) is named twice")
            }
            guard !address.host.isEmpty, address.host != "0.0.0.0", address.host != "::", address.port != 0 else {
                throw ParseError(description: "--advertised-listeners: \(name)://\(address) is not an address a client can connect to")
            }
            result[index].advertised = address
        }
        return result
    }

    /// Parses Kafka's `listener.security.protocol.map` (`CLIENT:SSL,INTERNAL:PLAINTEXT`).
    public static func parseProtocolMap(_ text: String) throws -> [String: SecurityProtocol] {
        var map: [String: SecurityProtocol] = [:]
        for entry in text.split(separator: ",") {
            let parts = entry.split(separator: ":", omittingEmptySubsequences: false)
            let name = parts.first.map { $0.withoutSurroundingSpaces.uppercased() } ?? ""
            guard parts.count == 2, !name.isEmpty,
                let securityProtocol = SecurityProtocol(rawValue: parts[1].withoutSurroundingSpaces.uppercased())
            else {
                throw ParseError(description: "--listener-security-protocol-map takes NAME:PROTOCOL[,...], not '\(entry)'")
            }
            map[name] = securityProtocol
        }
        return map
    }

    /// `NAME://host:port` entries; an IPv6 host is bracketed, an empty host is kept empty.
    private static func endpoints(_ text: String, flag: String) throws -> [(String, HostPort)] {
        var result: [(String, HostPort)] = []
        for raw in text.split(separator: ",") {
            let entry = raw.withoutSurroundingSpaces
            guard let scheme = entry.range(of: "://") else {
                throw ParseError(description: "\(flag) takes NAME://HOST:PORT[,...], not '\(entry)'")
            }
            let name = entry[..<scheme.lowerBound].uppercased()
            let rest = entry[scheme.upperBound...]
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }),
                let colon = rest.lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)...]),
                (0...65535).contains(port)
            else {
                throw ParseError(description: "\(flag) takes NAME://HOST:PORT[,...], not '\(entry)'")
            }
            var host = String(rest[..<colon])
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            result.append((name, HostPort(host: host, port: port)))
        }
        guard !result.isEmpty else { throw ParseError(description: "\(flag) names no listener") }
        return result
    }
}

extension StringProtocol {
    fileprivate var withoutSurroundingSpaces: String {
        String(drop(while: { $0 == " " }).reversed().drop(while: { $0 == " " }).reversed())
    }
}
