import KafkaProtocol
import NIOCore

/// The durable record of one topic, `<dir>/__topics/<name>.meta`: magic "OTOP", format version,
/// name, id, partition count and config overrides, then a CRC-32C of all that. Written atomically,
/// so the file is either the old or the new version; the CRC catches anything else.
enum TopicMetadataFile {
    static let magic: UInt32 = 0x4F54_4F50  // "OTOP"
    static let version: Int16 = 1

    static func encode(_ metadata: TopicMetadata) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        buffer.writeInteger(magic, endianness: .big)
        buffer.writeInteger(version, endianness: .big)
        buffer.writeKafkaString(metadata.name, compact: false)
        buffer.writeKafkaUUID(metadata.id)
        buffer.writeInteger(metadata.partitionCount, endianness: .big)
        let configs = metadata.configs.sorted { $0.key < $1.key }
        buffer.writeInteger(Int32(configs.count), endianness: .big)
        for (key, value) in configs {
            buffer.writeKafkaString(key, compact: false)
            buffer.writeKafkaString(value, compact: false)
        }
        buffer.writeInteger(CRC32C.checksum(buffer), endianness: .big)
        return buffer
    }

    static func decode(_ buffer: ByteBuffer, path: String) throws -> TopicMetadata {
        guard buffer.readableBytes >= 4 else { throw StorageError.corrupt("\(path): too short") }
        var body = buffer.getSlice(at: buffer.readerIndex, length: buffer.readableBytes - 4)!
        let stored = buffer.getInteger(at: buffer.writerIndex - 4, endianness: .big, as: UInt32.self)!
        guard CRC32C.checksum(body) == stored else { throw StorageError.corrupt("\(path): checksum mismatch") }
        do {
            guard try body.readKafkaInt(UInt32.self) == magic else { throw StorageError.corrupt("\(path): not a topic file") }
            let version = try body.readKafkaInt(Int16.self)
            guard version == Self.version else { throw StorageError.corrupt("\(path): unknown version \(version)") }
            let name = try body.readKafkaString(compact: false)
            let id = try body.readKafkaUUID()
            let partitions = try body.readKafkaInt(Int32.self)
            let count = try body.readKafkaInt(Int32.self)
            var configs: [String: String] = [:]
            for _ in 0..<max(count, 0) {
                let key = try body.readKafkaString(compact: false)
                configs[key] = try body.readKafkaString(compact: false)
            }
            return TopicMetadata(name: name, id: id, partitionCount: partitions, configs: configs)
        } catch let error as StorageError {
            throw error
        } catch {
            throw StorageError.corrupt("\(path): \(error)")
        }
    }
}
