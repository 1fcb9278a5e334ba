/// A client certificate's subject as Kafka's default principal builder names it: Java's
/// `X500Principal.getName()`, the RFC 2253 form (`CN=alice,OU=payments,O=Example,C=NL`), so an ACL
/// written for a Kafka cluster names the same principal here. NIOSSL exposes the subject only as a
/// flat list without the RDN structure or the unknown attribute types, so the DER is read directly.
enum CertificateSubject {
    struct Malformed: Error, CustomStringConvertible {
        var description: String
    }

    /// The subject of a DER-encoded X.509 certificate in RFC 2253 form: the most significant RDN
    /// last in the encoding comes first in the text, multi-valued RDNs are joined with `+`.
    static func rfc2253(certificateDER der: [UInt8]) throws -> String {
        var reader = DERReader(der[...])
        var certificate = DERReader(try reader.read(tag: 0x30).contents)
        var tbs = try DERReader(certificate.read(tag: 0x30).contents)
        if tbs.peekTag == 0xA0 { _ = try tbs.readAny() }  // version
        _ = try tbs.read(tag: 0x02)  // serialNumber
        _ = try tbs.read(tag: 0x30)  // signature algorithm
        _ = try tbs.read(tag: 0x30)  // issuer
        _ = try tbs.read(tag: 0x30)  // validity
        return try rfc2253(name: tbs.read(tag: 0x30).contents)
    }

    /// A Name's RDNSequence (the SEQUENCE's contents) in RFC 2253 form.
    static func rfc2253(name: ArraySlice<UInt8>) throws -> String {
        var sequence = DERReader(name)
        var rdns: [String] = []
        while !sequence.isAtEnd {
            var set = DERReader(try sequence.read(tag: 0x31).contents)
            var attributes: [String] = []
            while !set.isAtEnd {
                var pair = DERReader(try set.read(tag: 0x30).contents)
                let oid = try pair.read(tag: 0x06).contents
                let value = try pair.readAny()
                attributes.append(try attribute(oid: oid, value: value))
            }
            rdns.append(attributes.joined(separator: "+"))
        }
        return rdns.reversed().joined(separator: ",")
    }

    /// RFC 2253's keywords, the ones Java prints by name; any other type is printed as its OID.
    private static let keywords: [String: String] = [
        "2.5.4.3": "CN", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST", "2.5.4.9": "STREET",
        "2.5.4.10": "O", "2.5.4.11": "OU", "0.9.2342.19200300.100.1.25": "DC", "0.9.2342.19200300.100.1.1": "UID",
    ]

    private static func attribute(oid: ArraySlice<UInt8>, value: DERReader.Element) throws -> String {
        let dotted = try dottedOID(oid)
        guard let keyword = keywords[dotted], let text = string(value) else {
            // RFC 2253 2.4: a type without a keyword, or a value that is not a string, is the
            // OID and a '#' followed by the value's whole BER encoding in hex, as Java prints it.
            return dotted + "=#" + value.encoded.map { hex($0) }.joined()
        }
        return keyword + "=" + escape(text)
    }

    private static func string(_ element: DERReader.Element) -> String? {
        let bytes = Array(element.contents)
        switch element.tag {
        case 0x0C, 0x13, 0x16, 0x1A:  // UTF8String, PrintableString, IA5String, VisibleString
            return String(validating: bytes, as: UTF8.self)
        case 0x14:  // TeletexString, read as Latin-1 as most decoders do
            return String(bytes.map { Character(Unicode.Scalar($0)) })
        case 0x1E:  // BMPString: UTF-16BE
            guard bytes.count % 2 == 0 else { return nil }
            let units = stride(from: 0, to: bytes.count, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
            return String(validating: units, as: UTF16.self)
        default:
            return nil
        }
    }

    /// RFC 2253 2.4: `,+"\<>;` are escaped anywhere, `#` or a space at the start, a space at the end.
    private static func escape(_ text: String) -> String {
        var out = ""
        let characters = Array(text)
        for (i, c) in characters.enumerated() {
            let special = ",+\"\\<>;".contains(c) || (i == 0 && (c == "#" || c == " "))
                || (i == characters.count - 1 && c == " ")
            if special { out.append("\\") }
            out.append(c)
        }
        return out
    }

    private static func dottedOID(_ bytes: ArraySlice<UInt8>) throws -> String {
        guard !bytes.isEmpty else { throw Malformed(description: "empty object identifier") }
        var arcs: [UInt64] = []
        var value: UInt64 = 0
        for byte in bytes {
            guard value >> 57 == 0 else { throw Malformed(description: "object identifier arc too large") }
            value = value << 7 | UInt64(byte & 0x7F)
            if byte & 0x80 == 0 {
                arcs.append(value)
                value = 0
            }
        }
        guard bytes.last! & 0x80 == 0 else { throw Malformed(description: "truncated object identifier") }
        let first = arcs.removeFirst()
        let head: [UInt64] = first < 80 ? [first / 40, first % 40] : [2, first - 80]
        return (head + arcs).map(String.init).joined(separator: ".")
    }

    private static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0F)]])
    }
}

/// Just enough DER to walk a certificate: definite lengths, single-byte tags.
struct DERReader {
    struct Element {
        var tag: UInt8
        var contents: ArraySlice<UInt8>
        /// Tag, length and contents, as they were encoded.
        var encoded: ArraySlice<UInt8>
    }

    private var bytes: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
    }

    var isAtEnd: Bool { bytes.isEmpty }
    var peekTag: UInt8? { bytes.first }

    mutating func read(tag: UInt8) throws -> Element {
        let element = try readAny()
        guard element.tag == tag else {
            throw CertificateSubject.Malformed(description: "expected DER tag \(tag), found \(element.tag)")
        }
        return element
    }

    mutating func readAny() throws -> Element {
        let start = bytes.startIndex
        guard bytes.count >= 2 else { throw CertificateSubject.Malformed(description: "truncated DER element") }
        let tag = bytes[start]
        guard tag & 0x1F != 0x1F else { throw CertificateSubject.Malformed(description: "multi-byte DER tags are not used in names") }
        var index = start + 1
        var length = Int(bytes[index])
        index += 1
        if length & 0x80 != 0 {
            let count = length & 0x7F
            guard count >= 1, count <= 4, bytes.endIndex - index >= count else {
                throw CertificateSubject.Malformed(description: "bad DER length")
            }
            length = 0
            for _ in 0..<count {
                length = length << 8 | Int(bytes[index])
                index += 1
            }
        }
        guard bytes.endIndex - index >= length else { throw CertificateSubject.Malformed(description: "DER element overruns its container") }
        let end = index + length
        let element = Element(tag: tag, contents: bytes[index..<end], encoded: bytes[start..<end])
        bytes = bytes[end...]
        return element
    }
}
