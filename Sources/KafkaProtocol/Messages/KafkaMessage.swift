import NIOCore

/// A top-level generated message: a header, a request or response body, or a data type embedded
/// in another message. Lets framing and tests handle every message with one generic function.
public protocol KafkaMessage: Sendable, Hashable {
    /// The versions Kafka's schema declares.
    static var validVersions: ClosedRange<Int16> { get }
    /// The first version with compact encodings and tagged fields; nil if there is none.
    static var firstFlexibleVersion: Int16? { get }
    /// Every field at its schema default.
    init()
    /// Decodes the body at `version`, consuming exactly its bytes. The caller checks `validVersions`.
    init(from buffer: inout ByteBuffer, version: Int16) throws
    func encode(into buffer: inout ByteBuffer, version: Int16)
}

/// A request or response body of one API.
public protocol KafkaApiMessage: KafkaMessage {
    static var apiKey: Int16 { get }
}

/// A request body, tied to the response body it is answered with.
public protocol KafkaRequest: KafkaApiMessage {
    associatedtype Response: KafkaResponse
}

/// A response body.
public protocol KafkaResponse: KafkaApiMessage {}
