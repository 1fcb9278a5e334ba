import Glibc
import KafkaProtocol
import NIOCore
import OnceCore

/// One cleaned segment being written as `<base>.log.cleaned` from consecutive source segments,
/// each batch decided by the pass's filter as it streams by: the writer holds one write buffer and
/// the source's read chunk, never a segment.
struct CleanedSegmentWriter {
    let path: String
    private let out: PosixFile
    private(set) var segment: FileSegment
    /// Source indexes, in order.
    private(set) var sources: [Int] = []
    private var pending = ByteBufferAllocator().buffer(capacity: 1 << 20)
    private var flushed = 0
    /// Whether any batch differs from its source: a group that changed nothing is not swapped in.
    private(set) var changed = false
    private let indexInterval: Int
    private let throttle: CleanerThrottle

    init(directory: String, base: Int64, files: FileHandleCache, indexInterval: Int, throttle: CleanerThrottle) throws {
        path = FilePartitionLog.cleanedPath(directory, base)
        try PosixFile.remove(path)
        out = try PosixFile.openFile(path, create: true)
        segment = FileSegment(
            baseOffset: base, directory: directory, log: SegmentFile(path: FileSegment.path(directory, base, .log), cache: files),
            lastAppendMs: 0)
        self.indexInterval = indexInterval
        self.throttle = throttle
    }

    /// Bytes of the cleaned segment so far.
    var written: Int { flushed + pending.readableBytes }

    private mutating func flush() throws {
        guard pending.readableBytes > 0 else { return }
        try out.write(pending, at: flushed)
        throttle.account(pending.readableBytes)
        flushed += pending.readableBytes
        pending.clear()
    }

    /// Streams one source segment through the filter into the cleaned segment; returns the bytes read.
    mutating func add(
        _ index: Int, source: FileSegment, file: PosixFile, filter: inout CleaningPlan.Filter
    ) throws -> Int {
        sources.append(index)
        segment.lastAppendMs = max(segment.lastAppendMs, source.lastAppendMs)
        var reader = BatchReader(file: file, end: source.size, throttle: throttle)
        while let (_, header, original) = try reader.next() {
            let outcome = filter.decide(try CleanedBatch.planBatch(header, bytes: original))
            if outcome != .keep { changed = true }
            guard var batch = try CleanedBatch.apply(outcome, to: original) else { continue }
            let kept = try RecordBatchHeader(reading: batch, at: batch.readerIndex)
            segment.recordBatch(BatchFrame(kept, position: written), indexInterval: indexInterval)
            pending.writeBuffer(&batch)
            if pending.readableBytes >= 1 << 20 { try flush() }
        }
        return reader.bytesRead
    }

    /// Seals the segment, ending at `end`, fsynced and with the newest source's modification
    /// time, so retention keeps counting from the original writes.
    mutating func finish(end: Int64) throws -> FileSegment {
        try flush()
        segment.nextOffset = end
        segment.seal()
        try out.sync()
        let lastAppendMs = segment.lastAppendMs
        let mtime = timespec(tv_sec: Int(lastAppendMs / 1000), tv_nsec: Int(lastAppendMs % 1000) * 1_000_000)
        var times = [mtime, mtime]
        guard futimens(out.fd, &times) == 0 else { throw PosixFile.error("futimens", path) }
        return segment
    }

    func discard() throws {
        try PosixFile.remove(path)
    }
}
