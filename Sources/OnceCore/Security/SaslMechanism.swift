/// The SASL mechanisms this broker and client speak, by the names SaslHandshake carries.
public enum SaslMechanism: String, Sendable, CaseIterable, Hashable {
    case plain = "PLAIN"
    case scramSha256 = "SCRAM-SHA-256"
    case scramSha512 = "SCRAM-SHA-512"

    /// The SCRAM variant, nil for PLAIN.
    public var scram: ScramMechanism? {
        switch self {
        case .plain: nil
        case .scramSha256: .sha256
        case .scramSha512: .sha512
        }
    }
}
