/// The pieces of SCRAM's text messages (RFC 5802 section 7) both sides parse: comma-separated
/// `k=value` attributes, and the SASL name with `,` and `=` escaped as `=2C` and `=3D`.
enum ScramMessage {
    /// Splits `a=1,b=2` into attributes in order; nil if any part is not `letters=value`. RFC 5802's
    /// keys are one letter; Kafka's extensions (`tokenauth=true`) are words.
    static func attributes(_ text: Substring) -> [(key: Substring, value: Substring)]? {
        var result: [(key: Substring, value: Substring)] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            guard let equals = part.firstIndex(of: "=") else { return nil }
            let key = part[..<equals]
            guard !key.isEmpty, key.allSatisfy({ $0.isASCII && $0.isLetter }) else { return nil }
            result.append((key, part[part.index(after: equals)...]))
        }
        return result
    }

    static func escape(username: String) -> String {
        var out = ""
        for c in username {
            switch c {
            case ",": out += "=2C"
            case "=": out += "=3D"
            default: out.append(c)
            }
        }
        return out
    }

    /// Nil for an empty name or an `=` that starts neither escape.
    static func unescape(saslName: Substring) -> String? {
        guard !saslName.isEmpty else { return nil }
        var out = ""
        var index = saslName.startIndex
        while index < saslName.endIndex {
            let c = saslName[index]
            if c == "=" {
                let escape = saslName[index...].prefix(3)
                switch escape {
                case "=2C": out.append(",")
                case "=3D": out.append("=")
                default: return nil
                }
                index = saslName.index(index, offsetBy: 3)
            } else {
                out.append(c)
                index = saslName.index(after: index)
            }
        }
        return out
    }

    /// RFC 5802's `printable`: what a nonce may hold.
    static func isNonce(_ text: Substring) -> Bool {
        !text.isEmpty && text.utf8.allSatisfy { (0x21...0x7e).contains($0) && $0 != UInt8(ascii: ",") }
    }
}
