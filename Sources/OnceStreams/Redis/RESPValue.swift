import NIOCore

/// A value of the Redis serialization protocol (RESP2), as a reply from the server.
public enum RESPValue: Hashable, Sendable {
    case simpleString(String)
    case error(String)
    case integer(Int64)
    /// nil is the null bulk string (`$-1`), which GET answers for a missing key.
    case bulkString([UInt8]?)
    /// nil is the null array (`*-1`), which EXEC answers when a watched key changed.
    case array([RESPValue]?)

    /// The reply as text, for simple and bulk strings.
    public var string: String? {
        switch self {
        case .simpleString(let s): s
        case .bulkString(let bytes?): String(decoding: bytes, as: UTF8.self)
        default: nil
        }
    }

    public var isNull: Bool {
        switch self {
        case .bulkString(nil), .array(nil): true
        default: false
        }
    }
}

/// Encodes commands and decodes replies; no I/O, so every byte can be tested without a server.
public enum RESPCodec {
    public struct DecodingError: Error, Hashable, CustomStringConvertible {
        public var description: String
    }

    /// A command is always sent as an array of bulk strings, whatever the arguments hold.
    public static func encodeCommand(_ arguments: [[UInt8]], into buffer: inout ByteBuffer) {
        buffer.writeString("*\(arguments.count)\r\n")
        for argument in arguments {
            buffer.writeString("$\(argument.count)\r\n")
            buffer.writeBytes(argument)
            buffer.writeString("\r\n")
        }
    }

    public static func encodeCommand(_ arguments: [String], into buffer: inout ByteBuffer) {
        encodeCommand(arguments.map { Array($0.utf8) }, into: &buffer)
    }

    /// Decodes one whole reply and moves the reader index past it. Returns nil, leaving the
    /// buffer untouched, when the reply has not fully arrived yet.
    public static func decode(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        var copy = buffer
        guard let value = try decodeValue(&copy) else { return nil }
        buffer = copy
        return value
    }

    private static func decodeValue(_ buffer: inout ByteBuffer) throws -> RESPValue? {
        guard let type = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { return nil }
        guard let line = readLine(&buffer, skipping: 1) else { return nil }
        switch type {
        case UInt8(ascii: "+"): return .simpleString(line)
        case UInt8(ascii: "-"): return .error(line)
        case UInt8(ascii: ":"):
            guard let n = Int64(line) else { throw DecodingError(description: "bad integer '\(line)'") }
            return .integer(n)
        case UInt8(ascii: "$"):
            guard let length = Int(line), length >= -1 else { throw DecodingError(description: "bad bulk length '\(line)'") }
            if length == -1 { return .bulkString(nil) }
            guard buffer.readableBytes >= length + 2, let bytes = buffer.readBytes(length: length) else { return nil }
            guard buffer.readBytes(length: 2) == [13, 10] else {
                throw DecodingError(description: "bulk string not followed by CRLF")
            }
            return .bulkString(bytes)
        case UInt8(ascii: "*"):
            guard let count = Int(line), count >= -1 else { throw DecodingError(description: "bad array length '\(line)'") }
            if count == -1 { return .array(nil) }
            var elements: [RESPValue] = []
            elements.reserveCapacity(count)
            for _ in 0..<count {
                guard let element = try decodeValue(&buffer) else { return nil }
                elements.append(element)
            }
            return .array(elements)
        default:
            throw DecodingError(description: "unknown reply type byte \(type)")
        }
    }

    /// The text between the type byte and CRLF, or nil when CRLF has not arrived.
    private static func readLine(_ buffer: inout ByteBuffer, skipping prefix: Int) -> String? {
        let view = buffer.readableBytesView
        guard let cr = view.firstIndex(of: 13), view.index(after: cr) < view.endIndex,
            view[view.index(after: cr)] == 10
        else { return nil }
        let start = view.startIndex + prefix
        let text = String(decoding: view[start..<cr], as: UTF8.self)
        buffer.moveReaderIndex(forwardBy: cr - view.startIndex + 2)
        return text
    }
}
