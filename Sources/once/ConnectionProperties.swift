import ArgumentParser
import Foundation
import OnceClient

/// kcat's `-X name=value` with librdkafka's property names, so a command line written for kcat
/// carries over: `-X security.protocol=SSL -X ssl.ca.location=ca.pem`. Each property can also come
/// from an environment variable; `-X` wins over the environment.
struct ConnectionProperties: ParsableArguments {
    @Option(
        name: .customShort("X"),
        help: ArgumentHelp(
            "Client property NAME=VALUE, librdkafka's names, repeatable: \(ConnectionProperties.known.map(\.name).joined(separator: ", "))",
            valueName: "name=value"))
    var properties: [String] = []

    /// A property this tool understands, and the environment variable that can set it.
    struct Known {
        var name: String
        var environment: String
    }

    static let known: [Known] = [
        Known(name: "security.protocol", environment: "ONCE_SECURITY_PROTOCOL"),
        Known(name: "ssl.ca.location", environment: "ONCE_SSL_CA_LOCATION"),
        Known(name: "ssl.certificate.location", environment: "ONCE_SSL_CERTIFICATE_LOCATION"),
        Known(name: "ssl.key.location", environment: "ONCE_SSL_KEY_LOCATION"),
        Known(name: "ssl.key.password", environment: "ONCE_SSL_KEY_PASSWORD"),
        Known(name: "ssl.endpoint.identification.algorithm", environment: "ONCE_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM"),
        Known(name: "sasl.mechanism", environment: "ONCE_SASL_MECHANISM"),
        Known(name: "sasl.username", environment: "ONCE_SASL_USERNAME"),
        Known(name: "sasl.password", environment: "ONCE_SASL_PASSWORD"),
    ]

    /// librdkafka's older spelling, which kcat command lines still use.
    static let aliases = ["sasl.mechanisms": "sasl.mechanism"]

    func validate() throws {
        _ = try values()
    }

    /// The environment's values overlaid with `-X`'s; an unknown name is refused rather than
    /// silently ignored, since a mistyped security setting would connect in the clear.
    func values(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> [String: String] {
        var values: [String: String] = [:]
        for property in Self.known {
            if let value = environment[property.environment], !value.isEmpty { values[property.name] = value }
        }
        for entry in properties {
            guard let equals = entry.firstIndex(of: "="), equals != entry.startIndex else {
                throw ValidationError("-X takes NAME=VALUE, not '\(entry)'")
            }
            var name = String(entry[..<equals])
            name = Self.aliases[name] ?? name
            guard Self.known.contains(where: { $0.name == name }) else {
                throw ValidationError("-X \(name): unknown property (known: \(Self.known.map(\.name).joined(separator: ", ")))")
            }
            values[name] = String(entry[entry.index(after: equals)...])
        }
        return values
    }

    /// Applies the properties to a client configuration: TLS and SASL as the security protocol says.
    func apply(to configuration: inout KafkaClientConfiguration) throws {
        let values = try values()
        let securityProtocol = values["security.protocol"]?.uppercased() ?? "PLAINTEXT"
        let sslSettings = values.keys.filter { $0.hasPrefix("ssl.") }.sorted()
        guard ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"].contains(securityProtocol) else {
            throw ValidationError("security.protocol takes PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, not '\(securityProtocol)'")
        }
        configuration.sasl = try ClientSASLSettings.resolve(values, securityProtocol: securityProtocol)
        switch securityProtocol {
        case "PLAINTEXT", "SASL_PLAINTEXT":
            guard sslSettings.isEmpty else {
                throw ValidationError("\(sslSettings.joined(separator: ", ")) need security.protocol=SSL or SASL_SSL")
            }
            configuration.tls = nil
        default:
            var tls = ClientTLS(trust: values["ssl.ca.location"].map { .caBundle(path: $0) } ?? .system)
            tls.certificateLocation = values["ssl.certificate.location"]
            tls.keyLocation = values["ssl.key.location"]
            tls.keyPassword = values["ssl.key.password"]
            if (tls.certificateLocation == nil) != (tls.keyLocation == nil) {
                throw ValidationError("ssl.certificate.location and ssl.key.location go together")
            }
            switch values["ssl.endpoint.identification.algorithm"]?.lowercased() ?? "https" {
            case "https": tls.verifyHostname = true
            case "none": tls.verifyHostname = false
            case let other: throw ValidationError("ssl.endpoint.identification.algorithm takes https or none, not '\(other)'")
            }
            configuration.tls = tls
        }
    }
}
