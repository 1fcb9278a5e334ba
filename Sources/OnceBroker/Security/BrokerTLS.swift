import Foundation
import NIOSSL

/// What SSL and SASL_SSL listeners present and ask for: a PEM certificate chain and key (Kafka's
/// `ssl.keystore.*` with `ssl.keystore.type=PEM`), and for client-certificate authentication
/// the CA bundle client certificates must chain to (`ssl.truststore.*`).
public struct BrokerTLS: Sendable, Equatable {
    /// Kafka's `ssl.client.auth`.
    public enum ClientAuth: String, Sendable, CaseIterable {
        /// No client certificate is asked for; clients are ANONYMOUS until SASL says otherwise.
        case none
        /// A client certificate is asked for and, when given, must verify; a client without one
        /// still connects, as ANONYMOUS.
        case requested
        /// A client without a certificate that verifies fails the handshake.
        case required
    }

    public var certificateLocation: String
    public var keyLocation: String
    /// The passphrase of an encrypted key (`ssl.key.password`). Default: none.
    public var keyPassword: String?
    /// PEM CA bundle client certificates are checked against, and the other brokers' certificates
    /// when this broker connects to an SSL or SASL_SSL inter-broker listener (Kafka's one
    /// `ssl.truststore` serves both); nil uses the system's trust store for client certificates
    /// and is refused for an SSL inter-broker listener. Default: nil.
    public var caLocation: String?
    /// Default: `.none`, as Kafka.
    public var clientAuth: ClientAuth = .none

    public init(certificateLocation: String, keyLocation: String) {
        self.certificateLocation = certificateLocation
        self.keyLocation = keyLocation
    }

    /// Kafka's `ssl.endpoint.identification.algorithm`, for the connections this broker opens to
    /// the other brokers: `https` checks that a peer's certificate names the host or IP address
    /// connected to, the empty value (Kafka's way to turn it off) checks the chain only.
    public enum EndpointIdentification: String, Sendable, CaseIterable {
        case https
        case none = ""
    }

    /// Default: `.https`, as Kafka since 2.0 (KIP-294).
    public var endpointIdentification: EndpointIdentification = .https

    /// Loads and checks everything once at start, so an operator reads one line about the file
    /// at fault rather than every client failing its handshake later. TLS 1.2 is the floor, as
    /// Kafka's default `ssl.enabled.protocols` (TLSv1.2,TLSv1.3).
    func makeServerContext(now: Date = Date()) throws -> NIOSSLContext {
        let (chain, key) = try loadIdentity(now: now)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        switch clientAuth {
        case .none: configuration.certificateVerification = .none
        case .requested: configuration.certificateVerification = .optionalVerification
        case .required: configuration.certificateVerification = .noHostnameVerification
        }
        if caLocation != nil {
            configuration.trustRoots = .certificates(try loadAuthorities())
        }
        return try makeContext(configuration)
    }

    /// The certificate chain and key, checked for a chain that is present and valid now and a key
    /// that reads.
    func loadIdentity(now: Date) throws -> (chain: [NIOSSLCertificate], key: NIOSSLPrivateKey) {
        let chain: [NIOSSLCertificate]
        do {
            try Self.requireReadable(certificateLocation, what: "certificate")
            chain = try NIOSSLCertificate.fromPEMFile(certificateLocation)
        } catch let error as StartupError {
            throw error
        } catch {
            throw StartupError(description: "cannot read a PEM certificate from \(certificateLocation): \(error)")
        }
        guard let leaf = chain.first else {
            throw StartupError(description: "\(certificateLocation) holds no PEM certificate")
        }
        let seconds = Int(now.timeIntervalSince1970)
        if Int(leaf.notValidAfter) < seconds {
            throw StartupError(
                description: "the certificate in \(certificateLocation) expired on \(Self.date(leaf.notValidAfter))")
        }
        if Int(leaf.notValidBefore) > seconds {
            throw StartupError(
                description: "the certificate in \(certificateLocation) is not valid before \(Self.date(leaf.notValidBefore))")
        }
        let key: NIOSSLPrivateKey
        do {
            try Self.requireReadable(keyLocation, what: "key")
            if let keyPassword {
                key = try NIOSSLPrivateKey(file: keyLocation, format: .pem) { $0(Array(keyPassword.utf8)) }
            } else {
                key = try NIOSSLPrivateKey(file: keyLocation, format: .pem)
            }
        } catch let error as StartupError {
            throw error
        } catch {
            let hint = keyPassword == nil ? " (an encrypted key needs --ssl-key-password)" : " (or the key password is wrong)"
            throw StartupError(description: "cannot read a PEM private key from \(keyLocation)\(hint): \(error)")
        }
        return (chain, key)
    }

    /// The certificates of `caLocation`, which must hold at least one.
    func loadAuthorities() throws -> [NIOSSLCertificate] {
        guard let caLocation else { throw StartupError(description: "no --ssl-ca-location is given") }
        do {
            try Self.requireReadable(caLocation, what: "CA bundle")
            let authorities = try NIOSSLCertificate.fromPEMFile(caLocation)
            guard !authorities.isEmpty else { throw StartupError(description: "\(caLocation) holds no PEM certificate") }
            return authorities
        } catch let error as StartupError {
            throw error
        } catch {
            throw StartupError(description: "cannot read the PEM CA bundle \(caLocation): \(error)")
        }
    }

    func makeContext(_ configuration: TLSConfiguration) throws -> NIOSSLContext {
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            // The files each loaded, so what BoringSSL refuses is the pair.
            throw StartupError(
                description: "the key in \(keyLocation) does not match the certificate in \(certificateLocation): \(error)")
        }
    }

    private static func requireReadable(_ path: String, what: String) throws {
        guard FileManager.default.isReadableFile(atPath: path) else {
            let reason = FileManager.default.fileExists(atPath: path) ? "is not readable" : "does not exist"
            throw StartupError(description: "the TLS \(what) file \(path) \(reason)")
        }
    }

    private static func date(_ time: time_t) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(time)))
    }
}
