import CLibCrypto
import OnceCore

/// SCRAM's primitives and secure randomness from the system's OpenSSL libcrypto.
public struct LibCrypto: ScramHashing {
    public init() {}

    private static func digest(_ mechanism: ScramMechanism) -> OpaquePointer {
        switch mechanism {
        case .sha256: EVP_sha256()
        case .sha512: EVP_sha512()
        }
    }

    public func hash(_ mechanism: ScramMechanism, _ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: mechanism.digestLength)
        var length: UInt32 = 0
        let ok = EVP_Digest(data, data.count, &out, &length, Self.digest(mechanism), nil)
        precondition(ok == 1 && Int(length) == out.count, "libcrypto cannot hash")
        return out
    }

    public func hmac(_ mechanism: ScramMechanism, key: [UInt8], data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: mechanism.digestLength)
        var length: UInt32 = 0
        let result = key.withUnsafeBytes { keyBytes in
            HMAC(Self.digest(mechanism), keyBytes.baseAddress, Int32(key.count), data, data.count, &out, &length)
        }
        precondition(result != nil && Int(length) == out.count, "libcrypto cannot compute an HMAC")
        return out
    }

    public func pbkdf2(_ mechanism: ScramMechanism, password: [UInt8], salt: [UInt8], iterations: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: mechanism.digestLength)
        let ok = password.withUnsafeBufferPointer { pass in
            pass.withMemoryRebound(to: CChar.self) { pass in
                PKCS5_PBKDF2_HMAC(
                    pass.baseAddress, Int32(password.count), salt, Int32(salt.count), Int32(iterations),
                    Self.digest(mechanism), Int32(out.count), &out)
            }
        }
        precondition(ok == 1, "libcrypto cannot run PBKDF2")
        return out
    }

    /// Bytes from libcrypto's CSPRNG, for salts and nonces.
    public static func randomBytes(_ count: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        precondition(RAND_bytes(&out, Int32(count)) == 1, "libcrypto has no randomness")
        return out
    }

    /// A SCRAM nonce: 24 random bytes as printable text without commas.
    public static func nonce() -> String {
        String(randomBytes(24).map { "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"[$0 & 63] })
    }
}

extension String {
    fileprivate subscript(_ index: UInt8) -> Character { self[self.index(startIndex, offsetBy: Int(index))] }
}
