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
            // A TLS record (alert 0x15 or handshake 0x16, version 3.x) where a size should be:
            // the broker's listener speaks TLS and this connection does not.
            if size >> 24 == 0x15 || size >> 24 == 0x16, (size >> 16) & 0xFF == 0x03 {
                throw KafkaClientError(
                    .tlsFailed, "the broker answered with TLS: this listener needs security.protocol=SSL (ClientTLS)")
            }
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
