import KafkaProtocol
import NIOCore

/// The file form of a state document (`<dir>/__state/<name>`): magic "OSTA", the bytes, and a
/// CRC-32C of both. Written atomically by `PosixFile.writeAtomically`; the CRC catches anything else.
enum StateDocument {
    static let magic: UInt32 = 0x4F53_5441  // "OSTA"

    static func encode(_ bytes: [UInt8]) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: bytes.count + 8)
        buffer.writeInteger(magic, endianness: .big)
        buffer.writeBytes(bytes)
        buffer.writeInteger(CRC32C.checksum(buffer), endianness: .big)
        return buffer
    }

    static func decode(_ buffer: ByteBuffer, path: String) throws -> [UInt8] {
        guard buffer.readableBytes >= 8 else { throw StorageError.corrupt("\(path): too short") }
        var body = buffer.getSlice(at: buffer.readerIndex, length: buffer.readableBytes - 4)!
        let stored = buffer.getInteger(at: buffer.writerIndex - 4, endianness: .big, as: UInt32.self)!
        guard CRC32C.checksum(body) == stored else { throw StorageError.corrupt("\(path): checksum mismatch") }
        guard body.readInteger(endianness: .big, as: UInt32.self) == magic else {
            throw StorageError.corrupt("\(path): not a state document")
        }
        return body.readBytes(length: body.readableBytes) ?? []
    }
}

/// State document names become file names, so they are restricted like topic names.
enum StateName {
    static func validate(_ name: String) throws {
        if let problem = TopicName.validationError(name) {
            throw StorageError.invalidConfig("state name: \(problem)")
        }
    }
}
