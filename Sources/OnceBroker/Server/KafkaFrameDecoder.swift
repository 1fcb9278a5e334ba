import NIOCore

/// Splits the byte stream into Kafka frames (int32 size, then that many bytes). A size that is
/// negative or above the limit is an error, which closes only this connection: a client that lies
/// about sizes cannot make the broker allocate.
struct KafkaFrameDecoder: NIOSingleStepByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    let maxFrameSize: Int

    struct FrameTooLarge: Error, CustomStringConvertible {
        let size: Int
        let limit: Int
        var description: String { "request of \(size) bytes exceeds the limit of \(limit) bytes" }
    }

    mutating func decode(buffer: inout ByteBuffer) throws -> ByteBuffer? {
        guard let size = buffer.getInteger(at: buffer.readerIndex, as: Int32.self) else { return nil }
        guard size >= 0, Int(size) <= maxFrameSize else {
            throw FrameTooLarge(size: Int(size), limit: maxFrameSize)
        }
        guard buffer.readableBytes >= 4 + Int(size) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(size))
    }

    mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> ByteBuffer? {
        try decode(buffer: &buffer)
    }
}
