import NIOCore

/// Walks the batch headers of a stored segment, reading the file in chunks so a scan costs one
/// pread per chunk rather than one per batch. Only bytes below `end` are read: a concurrent append
/// beyond it is never half-seen.
struct FrameCursor {
    let file: PosixFile
    let end: Int
    let chunkSize: Int
    private(set) var position: Int
    private var chunk = ByteBuffer()
    private var chunkStart = 0

    init(file: PosixFile, from position: Int, end: Int, chunkSize: Int = 64 * 1024) {
        self.file = file
        self.position = position
        self.end = end
        self.chunkSize = max(chunkSize, BatchFrame.headerSize)
    }

    /// The next batch's frame, nil at `end`. Throws if a header is cut short by `end` or a batch
    /// claims to run past it.
    mutating func next() throws -> BatchFrame? {
        guard position < end else { return nil }
        let relative = position - chunkStart
        var frame = relative >= 0 ? try BatchFrame.read(chunk, at: relative, position: position) : nil
        if frame == nil {
            chunk = try file.read(at: position, count: min(chunkSize, end - position))
            chunkStart = position
            frame = try BatchFrame.read(chunk, at: 0, position: position)
        }
        guard let frame, position + frame.size <= end else {
            throw StorageError.corrupt("\(file.path): batch at \(position) runs past \(end)")
        }
        position += frame.size
        return frame
    }
}
