import ArgumentParser
import Foundation
import OnceBroker
import OnceCore

/// `once broker`'s SASL flags, each also an environment variable.
struct SaslBrokerOptions: ParsableArguments {
    @Option(help: "SASL mechanisms clients may use: PLAIN,SCRAM-SHA-256,SCRAM-SHA-512, sasl.enabled.mechanisms [env: ONCE_SASL_ENABLED_MECHANISMS] (default: SCRAM-SHA-256,SCRAM-SHA-512)")
    var saslEnabledMechanisms: String?

    @Option(
        help: ArgumentHelp(
            "Store a SCRAM credential before serving, as kafka-storage format --add-scram: 'SCRAM-SHA-512=[name=admin,password=SECRET]'; repeatable [env: ONCE_ADD_SCRAM, one per line]",
            valueName: "MECHANISM=[name=USER,password=PASSWORD]"))
    var addScram: [String] = []

    @Option(help: "Delay before a failed authentication is answered and the connection closed, ms, connection.failed.authentication.delay.ms [env: ONCE_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS] (default: 100)")
    var connectionFailedAuthenticationDelayMs: Int64?

    @Option(help: "Failed authentications one client address may have per minute before its attempts are refused unchecked [env: ONCE_SASL_MAX_FAILED_AUTHENTICATIONS_PER_MINUTE] (default: 10)")
    var saslMaxFailedAuthenticationsPerMinute: Int?

    func apply(to config: inout SaslConfig) throws {
        let environment = ProcessInfo.processInfo.environment
        func env(_ name: String) -> String? { environment[name].flatMap { $0.isEmpty ? nil : $0 } }
        if let text = saslEnabledMechanisms ?? env("ONCE_SASL_ENABLED_MECHANISMS") {
            var mechanisms: [SaslMechanism] = []
            for name in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !name.isEmpty {
                guard let mechanism = SaslMechanism(rawValue: name) else {
                    throw ValidationError(
                        "--sasl-enabled-mechanisms: unknown mechanism '\(name)' (known: \(SaslMechanism.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                if !mechanisms.contains(mechanism) { mechanisms.append(mechanism) }
            }
            guard !mechanisms.isEmpty else { throw ValidationError("--sasl-enabled-mechanisms names no mechanism") }
            config.enabledMechanisms = mechanisms
        }
        let credentials = addScram.isEmpty ? (env("ONCE_ADD_SCRAM")?.split(separator: "\n").map(String.init) ?? []) : addScram
        config.bootstrapCredentials = try credentials.map { text in
            do {
                return try ScramBootstrapCredential(parsing: text)
            } catch {
                throw ValidationError("\(error)")
            }
        }
        if let text = connectionFailedAuthenticationDelayMs.map(String.init) ?? env("ONCE_CONNECTION_FAILED_AUTHENTICATION_DELAY_MS") {
            guard let ms = Int64(text), ms >= 0 else {
                throw ValidationError("--connection-failed-authentication-delay-ms must be a non-negative number of ms")
            }
            config.failedAuthenticationDelayMs = ms
        }
        if let text = saslMaxFailedAuthenticationsPerMinute.map(String.init) ?? env("ONCE_SASL_MAX_FAILED_AUTHENTICATIONS_PER_MINUTE") {
            guard let n = Int(text), n > 0 else { throw ValidationError("--sasl-max-failed-authentications-per-minute must be positive") }
            config.maxFailedAuthenticationsPerMinute = n
        }
    }
}
