import ArgumentParser
import Foundation
import OnceClient

/// The SASL part of a client command's security settings, by librdkafka's property names (as
/// `-X name=value`) or their environment variables: sasl.mechanism (or sasl.mechanisms),
/// sasl.username, sasl.password; SASL is used when security.protocol is SASL_PLAINTEXT or
/// SASL_SSL.
enum ClientSASLSettings {
    static let environmentNames = [
        "sasl.mechanism": "ONCE_SASL_MECHANISM", "sasl.username": "ONCE_SASL_USERNAME",
        "sasl.password": "ONCE_SASL_PASSWORD", "security.protocol": "ONCE_SECURITY_PROTOCOL",
    ]

    /// `properties` are the -X settings, which win over the environment.
    static func resolve(
        properties: [String: String], environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> ClientSASL? {
        func value(_ name: String) -> String? {
            if name == "sasl.mechanism", let v = properties["sasl.mechanism"] ?? properties["sasl.mechanisms"] { return v }
            if let v = properties[name] { return v }
            return environmentNames[name].flatMap { environment[$0] }.flatMap { $0.isEmpty ? nil : $0 }
        }
        let securityProtocol = value("security.protocol")?.uppercased() ?? "PLAINTEXT"
        guard ["SASL_PLAINTEXT", "SASL_SSL"].contains(securityProtocol) else {
            if value("sasl.username") != nil && ["PLAINTEXT", "SSL"].contains(securityProtocol) {
                throw ValidationError("sasl.username is set but security.protocol is \(securityProtocol); use SASL_PLAINTEXT or SASL_SSL")
            }
            return nil
        }
        let name = value("sasl.mechanism")?.uppercased() ?? "PLAIN"
        guard let mechanism = ClientSASL.Mechanism(rawValue: name) else {
            throw ValidationError(
                "sasl.mechanism must be one of \(ClientSASL.Mechanism.allCases.map(\.rawValue).joined(separator: ", ")), not '\(name)'")
        }
        guard let username = value("sasl.username") else {
            throw ValidationError("security.protocol \(securityProtocol) needs sasl.username (-X sasl.username=... or ONCE_SASL_USERNAME)")
        }
        guard let password = value("sasl.password") else {
            throw ValidationError("security.protocol \(securityProtocol) needs sasl.password (-X sasl.password=... or ONCE_SASL_PASSWORD)")
        }
        return ClientSASL(mechanism: mechanism, username: username, password: password)
    }
}
