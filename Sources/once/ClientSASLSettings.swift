import ArgumentParser
import OnceClient

/// The SASL part of a client command's connection properties (librdkafka's sasl.mechanism,
/// sasl.username, sasl.password), used when security.protocol is SASL_PLAINTEXT or SASL_SSL.
enum ClientSASLSettings {
    static func resolve(_ values: [String: String], securityProtocol: String) throws -> ClientSASL? {
        let saslSettings = values.keys.filter { $0.hasPrefix("sasl.") }.sorted()
        guard securityProtocol.hasPrefix("SASL_") else {
            guard saslSettings.isEmpty else {
                throw ValidationError("\(saslSettings.joined(separator: ", ")) need security.protocol=SASL_PLAINTEXT or SASL_SSL")
            }
            return nil
        }
        // librdkafka's default mechanism.
        let name = values["sasl.mechanism"]?.uppercased() ?? "PLAIN"
        guard let mechanism = ClientSASL.Mechanism(rawValue: name) else {
            throw ValidationError(
                "sasl.mechanism takes \(ClientSASL.Mechanism.allCases.map(\.rawValue).joined(separator: ", ")), not '\(name)'")
        }
        guard let username = values["sasl.username"], let password = values["sasl.password"] else {
            throw ValidationError(
                "security.protocol=\(securityProtocol) needs sasl.username and sasl.password (-X or ONCE_SASL_USERNAME / ONCE_SASL_PASSWORD)")
        }
        return ClientSASL(mechanism: mechanism, username: username, password: password)
    }
}
