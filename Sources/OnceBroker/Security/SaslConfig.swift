import OnceCore

/// How SASL listeners authenticate clients.
public struct SaslConfig: Sendable {
    /// Mechanisms a client may pick in SaslHandshake (`sasl.enabled.mechanisms`; Kafka's default
    /// is GSSAPI, which Once does not speak). PLAIN is off by default: it sends the password itself,
    /// readable on a SASL_PLAINTEXT listener, and costs a PBKDF2 run per authentication.
    /// Default: SCRAM-SHA-256, SCRAM-SHA-512.
    public var enabledMechanisms: [SaslMechanism] = [.scramSha256, .scramSha512]
    /// A failed authentication is answered at once and its connection closed only after this
    /// delay, reading nothing meanwhile (`connection.failed.authentication.delay.ms`), so a
    /// password guesser gets few tries per connection second. Default: 100 ms.
    public var failedAuthenticationDelayMs: Int64 = 100
    /// Failed authentications one client address may have within a minute; beyond that its further
    /// attempts fail without their credentials being checked, until the oldest failure is a minute
    /// old. Other addresses and authenticated connections are unaffected. Kafka has no such limit.
    /// Default: 10.
    public var maxFailedAuthenticationsPerMinute: Int = 10
    /// Credentials stored before the broker serves, as `kafka-storage format --add-scram` stores
    /// them: how the first administrator exists before anyone can authenticate. Default: none.
    public var bootstrapCredentials: [ScramBootstrapCredential] = []

    public init() {}
}

/// One `--add-scram` argument in Kafka's form: `SCRAM-SHA-512=[name=admin,password=secret]`,
/// optionally with `iterations=8192`; a value may be double-quoted to hold `,` or `]`.
public struct ScramBootstrapCredential: Sendable, Hashable {
    public var mechanism: ScramMechanism
    public var user: String
    public var password: String
    public var iterations: Int

    public init(mechanism: ScramMechanism, user: String, password: String, iterations: Int = ScramMechanism.minIterations) {
        self.mechanism = mechanism
        self.user = user
        self.password = password
        self.iterations = iterations
    }

    /// Throws a message that repeats no password.
    public init(parsing text: String) throws {
        guard let equals = text.firstIndex(of: "="), let mechanism = ScramMechanism(rawValue: String(text[..<equals])) else {
            throw ParseError("--add-scram takes SCRAM-SHA-256=[...] or SCRAM-SHA-512=[...]")
        }
        let body = text[text.index(after: equals)...]
        guard body.hasPrefix("["), body.hasSuffix("]") else { throw ParseError("--add-scram takes \(mechanism.rawValue)=[name=USER,password=PASSWORD]") }
        var fields: [String: String] = [:]
        var key = "", value = "", inKey = true, quoted = false
        func finish() throws {
            guard !key.isEmpty else { return }
            guard fields[key] == nil else { throw ParseError("--add-scram names '\(key)' twice") }
            fields[key] = value
            key = ""
            value = ""
            inKey = true
        }
        for c in body.dropFirst().dropLast() {
            if quoted {
                if c == "\"" { quoted = false } else { value.append(c) }
            } else if c == "\"", !inKey {
                quoted = true
            } else if c == ",", !inKey {
                try finish()
            } else if c == "=", inKey {
                inKey = false
            } else if inKey {
                key.append(c)
            } else {
                value.append(c)
            }
        }
        guard !quoted else { throw ParseError("--add-scram has an unterminated quote") }
        try finish()
        guard let user = fields.removeValue(forKey: "name"), !user.isEmpty else { throw ParseError("--add-scram needs name=USER") }
        guard let password = fields.removeValue(forKey: "password"), !password.isEmpty else {
            throw ParseError("--add-scram needs password=PASSWORD for \(user)")
        }
        var iterations = ScramMechanism.minIterations
        if let text = fields.removeValue(forKey: "iterations") {
            guard let n = Int(text), (ScramMechanism.minIterations...ScramMechanism.maxIterations).contains(n) else {
                throw ParseError("--add-scram iterations must be \(ScramMechanism.minIterations)...\(ScramMechanism.maxIterations)")
            }
            iterations = n
        }
        guard fields.isEmpty else { throw ParseError("--add-scram does not know \(fields.keys.sorted().joined(separator: ", "))") }
        self.init(mechanism: mechanism, user: user, password: password, iterations: iterations)
    }

    public struct ParseError: Error, CustomStringConvertible {
        public var description: String
        init(_ description: String) { self.description = description }
    }
}
