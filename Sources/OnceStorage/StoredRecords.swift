import NIOCore

/// Whole batches as they lie in a segment file: the bytes a Fetch returns, named by place rather
/// than read into memory, so the server can send them with sendfile. Holding it keeps the file's
/// descriptor open, even if the handle cache evicts it or retention unlinks the segment meanwhile.
public struct StoredRecords: Sendable {
    let file: PosixFile
    public let position: Int
    public let length: Int

    /// The descriptor to send from; valid while this value is alive. Reads must use the explicit
    /// position (pread, sendfile with an offset), never the descriptor's file offset.
    public var descriptor: Int32 { file.fd }

    /// The same bytes in memory, for callers that cannot send from a file.
    public func read() throws -> ByteBuffer {
        let bytes = try file.read(at: position, count: length)
        guard bytes.readableBytes == length else {
            throw StorageError.corrupt("\(file.path): \(length) bytes at \(position) cut short")
        }
        return bytes
    }
}

extension PartitionLog {
    /// Engines without segment files (memory) cannot name places in them.
    public func locate(from offset: Int64, maxBytes: Int, limitOffset: Int64) throws -> StoredRecords? { nil }
}
