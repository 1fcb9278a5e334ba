import KafkaProtocol
import NIOCore

/// The few header fields of a v2 record batch the log needs: where it sits, how long it is, which
/// offsets and timestamps it covers. Reading them is the only per-batch work on the append and
/// fetch paths; records are never parsed here.
package struct BatchFrame: Sendable, Equatable {
    /// Position of the batch relative to the buffer or file it was read from.
    package var position: Int
    package var baseOffset: Int64
    /// Whole batch size, including the offset and length fields.
    package var size: Int
    package var lastOffsetDelta: Int32
    package var maxTimestamp: Int64

    var lastOffset: Int64 { baseOffset + Int64(lastOffsetDelta) }
    var nextOffset: Int64 { lastOffset + 1 }

    /// Bytes of header needed to frame a batch.
    static let headerSize = RecordBatchHeader.size

    /// The frame at `index` of `buffer` (an absolute index), or nil when the header is not wholly
    /// inside the buffer. Throws when the header cannot be a v2 batch.
    static func read(_ buffer: ByteBuffer, at index: Int, position: Int) throws -> BatchFrame? {
        guard index + headerSize <= buffer.writerIndex else { return nil }
        let header: RecordBatchHeader
        do {
            header = try RecordBatchHeader(reading: buffer, at: index)
        } catch {
            throw StorageError.corrupt("record batch at \(position): \(error)")
        }
        guard header.batchLength >= RecordBatchHeader.minimumBatchLength, header.lastOffsetDelta >= 0 else {
            throw StorageError.corrupt(
                "record batch at \(position): length \(header.batchLength), lastOffsetDelta \(header.lastOffsetDelta)")
        }
        return BatchFrame(header, position: position)
    }

    init(_ header: RecordBatchHeader, position: Int) {
        self.init(
            position: position, baseOffset: header.baseOffset, size: header.totalSize,
            lastOffsetDelta: header.lastOffsetDelta, maxTimestamp: header.maxTimestamp)
    }

    init(position: Int, baseOffset: Int64, size: Int, lastOffsetDelta: Int32, maxTimestamp: Int64) {
        self.position = position
        self.baseOffset = baseOffset
        self.size = size
        self.lastOffsetDelta = lastOffsetDelta
        self.maxTimestamp = maxTimestamp
    }

    /// Frames every batch of an append. The buffer must hold whole batches and nothing else, so a
    /// malformed request can never leave a half batch in the log.
    package static func frames(of buffer: ByteBuffer) throws -> [BatchFrame] {
        var frames: [BatchFrame] = []
        var index = buffer.readerIndex
        while index < buffer.writerIndex {
            let position = index - buffer.readerIndex
            guard let frame = try read(buffer, at: index, position: position) else {
                throw StorageError.corrupt("truncated record batch header at \(position)")
            }
            guard index + frame.size <= buffer.writerIndex else {
                throw StorageError.corrupt("truncated record batch at \(position)")
            }
            frames.append(frame)
            index += frame.size
        }
        guard !frames.isEmpty else { throw StorageError.corrupt("append without record batches") }
        return frames
    }
}
