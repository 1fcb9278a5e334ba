import KafkaProtocol

/// An error a Kafka broker returned in a response: the code (named by KafkaProtocol's shared
/// `ErrorCode` table, so broker and client agree on names) and the broker's message, if any.
///
/// Codes stay open-ended: an unknown code still prints with its number rather than being lost.
public struct KafkaError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: ErrorCode
    /// The broker's free-text explanation, when the response carried one.
    public var message: String?

    public init(_ code: ErrorCode, message: String? = nil) {
        self.code = code
        self.message = message
    }

    /// Returns nil for code 0 (NONE), so a response field maps straight to "error or not".
    public init?(errorCode: Int16, message: String? = nil) {
        guard errorCode != 0 else { return nil }
        self.init(ErrorCode(errorCode), message: message)
    }

    /// The protocol name, e.g. `UNKNOWN_TOPIC_OR_PARTITION`.
    public var name: String { code.name }

    /// Whether the same request may succeed if retried: the codes whose Java exceptions extend
    /// `RetriableException`.
    public var isRetriable: Bool { Self.retriableCodes.contains(code.rawValue) }

    public var description: String {
        if let message, !message.isEmpty {
            return "\(code.name) (\(code.rawValue)): \(message)"
        }
        return "\(code.name) (\(code.rawValue))"
    }

    /// Two errors are the same error when their codes are; the message is commentary.
    public static func == (lhs: KafkaError, rhs: KafkaError) -> Bool { lhs.code == rhs.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }

    /// Lets `catch let e as KafkaError where e ~= .unknownTopicOrPartition` read naturally.
    public static func ~= (pattern: ErrorCode, value: KafkaError) -> Bool { pattern == value.code }

    private static let retriableCodes: Set<Int16> = [
        2, 3, 5, 6, 7, 13, 14, 15, 16, 19, 20, 51, 56, 74, 75, 78, 80, 89, 100, 103,
    ]
}
