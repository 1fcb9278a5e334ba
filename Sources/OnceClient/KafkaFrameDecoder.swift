import KafkaProtocol
import NIOCore

/// Splits the byte stream from a broker into responses: each is a big-endian int32 size followed
/// by that many bytes (response header, then body). The size prefix is dropped.
///
/// A size above `maxFrameSize` is refused before any buffering, because a corrupt or hostile
/// prefix would otherwise make the client wait for, and allocate, gigabytes.
public struct KafkaFrameDecoder: NIOSingleStepByteToMessageDecoder {
    public typealias InboundOut = ByteBuffer

    public let maxFrameSize: Int

    public init(maxFrameSize: Int = 100 * 1024 * 1024) {
        self.maxFrameSize = maxFrameSize
    }

    public mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let size = buffer.getInteger(at: buffer.readerIndex, endianness: .big, as: Int32.self) else {
            return nil
        }
        // Every response starts with a 4-byte correlation id.
        guard size >= 4 else { throw KafkaProtocolError.invalid("response frame of \(size) bytes") }
        guard Int(size) <= maxFrameSize else {
            throw KafkaProtocolError.invalid("response frame of \(size) bytes exceeds the \(maxFrameSize)-byte limit")
        }
        guard buffer.readableBytes >= 4 + Int(size) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(size))
    }

    public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        try decode(buffer: &buffer)
    }
}
