/// Who a request acts for, in Kafka's `Type:Name` form (`User:alice`, `User:ANONYMOUS`): what SASL
/// or a client certificate established for the connection, and what ACLs name.
public struct KafkaPrincipal: Hashable, Sendable, CustomStringConvertible {
    public var type: String
    public var name: String

    public init(type: String = "User", name: String) {
        self.type = type
        self.name = name
    }

    /// The principal of a connection that has not authenticated (PLAINTEXT and SSL without a client
    /// certificate), as Kafka names it.
    public static let anonymous = KafkaPrincipal(name: "ANONYMOUS")

    /// Parses `Type:Name`; the name may itself contain colons (a certificate subject can).
    public init?(parsing text: String) {
        guard let colon = text.firstIndex(of: ":") else { return nil }
        let type = String(text[..<colon])
        let name = String(text[text.index(after: colon)...])
        guard !type.isEmpty, !name.isEmpty else { return nil }
        self.init(type: type, name: name)
    }

    public var description: String { "\(type):\(name)" }
}
