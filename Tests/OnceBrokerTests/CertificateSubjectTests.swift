@testable import OnceBroker
import Testing

@Suite("Client certificate subjects as Kafka names them (RFC 2253)")
struct CertificateSubjectTests {
    /// DER: tag, short or long length, contents.
    private func tlv(_ tag: UInt8, _ contents: [UInt8]) -> [UInt8] {
        let n = contents.count
        let length: [UInt8] = n < 0x80 ? [UInt8(n)] : n < 0x100 ? [0x81, UInt8(n)] : [0x82, UInt8(n >> 8), UInt8(n & 0xFF)]
        return [tag] + length + contents
    }

    private let cn: [UInt8] = [0x55, 0x04, 0x03]
    private let ou: [UInt8] = [0x55, 0x04, 0x0B]
    private let o: [UInt8] = [0x55, 0x04, 0x0A]
    private let c: [UInt8] = [0x55, 0x04, 0x06]
    /// 1.2.840.113549.1.9.1, emailAddress: no RFC 2253 keyword.
    private let email: [UInt8] = [0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01]

    private func attribute(_ oid: [UInt8], _ value: String, tag: UInt8 = 0x0C) -> [UInt8] {
        tlv(0x30, tlv(0x06, oid) + tlv(tag, Array(value.utf8)))
    }

    private func name(_ rdns: [[[UInt8]]]) -> ArraySlice<UInt8> {
        ArraySlice(rdns.flatMap { tlv(0x31, $0.flatMap { $0 }) })
    }

    @Test("The most significant RDN, encoded first, is printed last")
    func order() throws {
        let subject = name([[attribute(c, "NL", tag: 0x13)], [attribute(o, "Once Test")], [attribute(ou, "payments")], [attribute(cn, "alice")]])
        #expect(try CertificateSubject.rfc2253(name: subject) == "CN=alice,OU=payments,O=Once Test,C=NL")
    }

    @Test("A multi-valued RDN joins with +, special characters are escaped")
    func multiValuedAndEscaped() throws {
        let subject = name([[attribute(o, "Acme, Inc.")], [attribute(cn, "#bob "), attribute(ou, "a+b;c")]])
        #expect(try CertificateSubject.rfc2253(name: subject) == "CN=\\#bob\\ +OU=a\\+b\\;c,O=Acme\\, Inc.")
    }

    @Test("A type without a keyword is its OID with the value's DER in hex, as Java prints it")
    func unknownType() throws {
        let subject = name([[attribute(email, "a@b", tag: 0x16)], [attribute(cn, "x")]])
        #expect(try CertificateSubject.rfc2253(name: subject) == "CN=x,1.2.840.113549.1.9.1=#1603614062")
    }

    @Test("BMPString values are UTF-16")
    func bmpString() throws {
        let subject = name([[tlv(0x30, tlv(0x06, cn) + tlv(0x1E, [0x00, 0x7A, 0x00, 0xFC]))]])
        #expect(try CertificateSubject.rfc2253(name: subject) == "CN=zü")
    }

    @Test("The subject is found inside a whole certificate, after the issuer and validity")
    func wholeCertificate() throws {
        let issuer = tlv(0x30, Array(name([[attribute(cn, "Test CA")]])))
        let subject = tlv(0x30, Array(name([[attribute(o, "Once")], [attribute(cn, "alice")]])))
        let tbs = tlv(0xA0, tlv(0x02, [2])) + tlv(0x02, [0x10, 0x00]) + tlv(0x30, tlv(0x06, [0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]))
            + issuer + tlv(0x30, tlv(0x17, Array("200101000000Z".utf8)) + tlv(0x17, Array("300101000000Z".utf8)))
            + subject + tlv(0x30, Array(repeating: 0, count: 200))
        let certificate = tlv(0x30, tlv(0x30, tbs) + tlv(0x30, []) + tlv(0x03, [0]))
        #expect(try CertificateSubject.rfc2253(certificateDER: certificate) == "CN=alice,O=Once")
    }

    @Test("Truncated or mistagged input is refused, never read past its end")
    func malformed() {
        #expect(throws: CertificateSubject.Malformed.self) { try CertificateSubject.rfc2253(certificateDER: [0x30, 0x05, 0x30]) }
        #expect(throws: CertificateSubject.Malformed.self) { try CertificateSubject.rfc2253(certificateDER: [0x31, 0x00]) }
        #expect(throws: CertificateSubject.Malformed.self) { try CertificateSubject.rfc2253(name: [0x31, 0x03, 0x30, 0x01, 0x06]) }
    }
}
