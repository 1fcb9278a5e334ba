/// The two SCRAM mechanisms Kafka speaks (RFC 5802 with RFC 7677's SHA-256, and SHA-512), with the
/// numbers KIP-554's admin APIs give them and Kafka's bounds on iterations.
public enum ScramMechanism: String, Sendable, CaseIterable, Codable {
    case sha256 = "SCRAM-SHA-256"
    case sha512 = "SCRAM-SHA-512"

    /// The mechanism byte of DescribeUserScramCredentials / AlterUserScramCredentials (0 is UNKNOWN).
    public var kafkaType: Int8 {
        switch self {
        case .sha256: 1
        case .sha512: 2
        }
    }

    public init?(kafkaType: Int8) {
        guard let mechanism = Self.allCases.first(where: { $0.kafkaType == kafkaType }) else { return nil }
        self = mechanism
    }

    /// Bytes of the hash, which is also the length of every key SCRAM derives.
    public var digestLength: Int {
        switch self {
        case .sha256: 32
        case .sha512: 64
        }
    }

    /// Kafka refuses fewer iterations, on the server and in its client, so a weak credential can
    /// neither be stored nor be used to authenticate.
    public static let minIterations = 4096
    /// Kafka's controller refuses more (ScramControlManager.MAX_ITERATIONS): each authentication
    /// costs the client this many HMACs.
    public static let maxIterations = 16384
}

/// The cryptographic primitives SCRAM is built from, supplied from outside so the exchanges stay
/// pure: OnceCrypto gives libcrypto's, tests may give their own.
public protocol ScramHashing: Sendable {
    func hash(_ mechanism: ScramMechanism, _ data: [UInt8]) -> [UInt8]
    func hmac(_ mechanism: ScramMechanism, key: [UInt8], data: [UInt8]) -> [UInt8]
    /// PBKDF2 with HMAC of the mechanism's hash, one block: RFC 5802's Hi().
    func pbkdf2(_ mechanism: ScramMechanism, password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8]
}

/// What a server keeps per user and mechanism: enough to check a proof and to prove itself, never
/// the password or the salted password (RFC 5802 section 3).
public struct ScramCredential: Sendable, Hashable, Codable {
    public var salt: [UInt8]
    public var iterations: Int
    public var storedKey: [UInt8]
    public var serverKey: [UInt8]

    public init(salt: [UInt8], iterations: Int, storedKey: [UInt8], serverKey: [UInt8]) {
        self.salt = salt
        self.iterations = iterations
        self.storedKey = storedKey
        self.serverKey = serverKey
    }
}

/// RFC 5802's formulas, over any `ScramHashing`.
public struct ScramFormulas: Sendable {
    public let mechanism: ScramMechanism
    public let hashing: any ScramHashing

    public init(_ mechanism: ScramMechanism, hashing: any ScramHashing) {
        self.mechanism = mechanism
        self.hashing = hashing
    }

    public func saltedPassword(_ password: String, salt: [UInt8], iterations: Int) -> [UInt8] {
        hashing.pbkdf2(mechanism, password: Array(password.utf8), salt: salt, iterations: iterations)
    }

    public func clientKey(saltedPassword: [UInt8]) -> [UInt8] {
        hashing.hmac(mechanism, key: saltedPassword, data: Array("Client Key".utf8))
    }

    public func storedKey(clientKey: [UInt8]) -> [UInt8] { hashing.hash(mechanism, clientKey) }

    public func serverKey(saltedPassword: [UInt8]) -> [UInt8] {
        hashing.hmac(mechanism, key: saltedPassword, data: Array("Server Key".utf8))
    }

    /// The credential a server stores for a salted password, as Kafka's controller derives it from
    /// an AlterUserScramCredentials upsertion.
    public func credential(saltedPassword: [UInt8], salt: [UInt8], iterations: Int) -> ScramCredential {
        ScramCredential(
            salt: salt, iterations: iterations,
            storedKey: storedKey(clientKey: clientKey(saltedPassword: saltedPassword)),
            serverKey: serverKey(saltedPassword: saltedPassword))
    }

    public func clientSignature(storedKey: [UInt8], authMessage: [UInt8]) -> [UInt8] {
        hashing.hmac(mechanism, key: storedKey, data: authMessage)
    }

    public func clientProof(clientKey: [UInt8], storedKey: [UInt8], authMessage: [UInt8]) -> [UInt8] {
        xor(clientKey, clientSignature(storedKey: storedKey, authMessage: authMessage))
    }

    public func serverSignature(serverKey: [UInt8], authMessage: [UInt8]) -> [UInt8] {
        hashing.hmac(mechanism, key: serverKey, data: authMessage)
    }

    /// Whether `password` is the one `credential` was made from: what SASL/PLAIN checks against
    /// the SCRAM store, so one store serves both mechanisms.
    public func verify(password: String, against credential: ScramCredential) -> Bool {
        let salted = saltedPassword(password, salt: credential.salt, iterations: credential.iterations)
        return constantTimeEqual(storedKey(clientKey: clientKey(saltedPassword: salted)), credential.storedKey)
    }
}

func xor(_ a: [UInt8], _ b: [UInt8]) -> [UInt8] {
    precondition(a.count == b.count, "SCRAM keys of one mechanism have one length")
    return zip(a, b).map { $0 ^ $1 }
}

/// Compares secrets without returning early, so timing does not reveal how much of a proof matched.
public func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
    guard a.count == b.count else { return false }
    var difference: UInt8 = 0
    for index in a.indices { difference |= a[index] ^ b[index] }
    return difference == 0
}
