import KafkaProtocol
import NIOCore

/// Whole batches of a stored segment in order, read in chunks of about `chunkSize` bytes, so the
/// cleaner holds one chunk of a 1 GiB segment in memory rather than the segment. Every read is
/// accounted to the cleaner's throttle.
struct BatchReader {
    let file: PosixFile
    let end: Int
    let chunkSize: Int
    let throttle: CleanerThrottle
    private(set) var bytesRead = 0
    private var position = 0
    private var chunk = ByteBuffer()
    private var chunkStart = 0

    init(file: PosixFile, end: Int, throttle: CleanerThrottle, chunkSize: Int = 8 << 20) {
        self.file = file
        self.end = end
        self.throttle = throttle
        self.chunkSize = max(chunkSize, RecordBatchHeader.size)
    }

    private mutating func load(_ count: Int) throws {
        chunk = try file.read(at: position, count: min(count, end - position))
        chunkStart = position
        bytesRead += chunk.readableBytes
        throttle.account(chunk.readableBytes)
    }

    /// The next batch and where it starts; nil at `end`.
    mutating func next() throws -> (position: Int, header: RecordBatchHeader, bytes: ByteBuffer)? {
        guard position < end else { return nil }
        if position - chunkStart + RecordBatchHeader.size > chunk.readableBytes { try load(chunkSize) }
        guard position - chunkStart + RecordBatchHeader.size <= chunk.readableBytes else {
            throw StorageError.corrupt("\(file.path): batch header at \(position) cut short")
        }
        let header = try RecordBatchHeader(reading: chunk, at: chunk.readerIndex + position - chunkStart)
        guard header.batchLength >= RecordBatchHeader.minimumBatchLength, position + header.totalSize <= end else {
            throw StorageError.corrupt("\(file.path): batch at \(position) runs past \(end)")
        }
        if position - chunkStart + header.totalSize > chunk.readableBytes { try load(max(chunkSize, header.totalSize)) }
        let bytes = chunk.getSlice(at: chunk.readerIndex + position - chunkStart, length: header.totalSize)!
        defer { position += header.totalSize }
        return (position, header, bytes)
    }
}
