import Foundation
import KafkaProtocol
import Logging
import NIOCore

extension FilePartitionLog {
    /// Opens (or creates) a partition directory. Sealed segments come back from their index files
    /// after a cheap check of the batches past the last index entry; the last segment is scanned in
    /// full, checksums included, and cut at the first batch that is torn or corrupt, so the log
    /// ends with the last batch a crash left whole.
    static func open(
        topic: String, partition: Int32, directory: String, config: TopicConfig, runtime: FileStorageRuntime
    ) throws -> FilePartitionLog {
        let fileManager = FileManager.default
        if !fileManager.fileExists(atPath: directory) {
            do {
                try fileManager.createDirectory(atPath: directory, withIntermediateDirectories: true)
            } catch {
                throw StorageError.io("mkdir \(directory): \(error)")
            }
        }
        func list() throws -> [String] {
            do {
                return try fileManager.contentsOfDirectory(atPath: directory)
            } catch {
                throw StorageError.io("list \(directory): \(error)")
            }
        }
        var names = try list()
        // A cleaner swap that a crash interrupted is finished before the segments are read.
        if try recoverSwaps(directory: directory, names: names) { names = try list() }
        let bases = names.compactMap { FileSegment.baseOffset(fromFileName: $0, kind: .log) }.sorted()
        let baseSet = Set(bases)
        for name in names {
            let orphanIndex = (FileSegment.baseOffset(fromFileName: name, kind: .index)
                ?? FileSegment.baseOffset(fromFileName: name, kind: .timeIndex)).map { !baseSet.contains($0) } ?? false
            if name.hasSuffix(".tmp") || name.hasSuffix(cleanedSuffix) || orphanIndex {
                try PosixFile.remove(directory + "/" + name)
            }
        }
        let logger = runtime.logger
        var segments: [FileSegment] = []
        if bases.isEmpty {
            segments.append(
                try FileSegment.create(baseOffset: 0, directory: directory, nowMs: currentTimeMillis(), files: runtime.files))
            // The entry must be durable before fsynced appends to it count as durable; with no
            // fsyncs promised (as for a roll) a lost empty segment is simply created again.
            if runtime.flushPolicy != .none { try PosixFile.syncDirectory(directory) }
        }
        for (i, base) in bases.enumerated() {
            let log = SegmentFile(path: FileSegment.path(directory, base, .log), cache: runtime.files)
            var segment = FileSegment(
                baseOffset: base, directory: directory, log: log, lastAppendMs: try log.modificationTimeMs())
            if i == bases.count - 1 {
                try recover(&segment, config: config, logger: logger)
                if segment.size > 0 { segment.firstAppendMs = currentTimeMillis() }
                // A crashed process leaves appends in the page cache that were never synced; under
                // `always` they count as durable (readable) only once they are.
                if runtime.flushPolicy == .always && segment.size > 0 { try log.sync() }
            } else {
                try load(&segment, nextBaseOffset: bases[i + 1], config: config, logger: logger)
            }
            segments.append(segment)
        }
        let logEnd = segments[segments.count - 1].nextOffset
        var state = State(config: config, segments: segments, logEndOffset: logEnd, durableOffset: logEnd)
        // A torn tail can leave the log end below a start DeleteRecords stored; then nothing is left.
        state.startFloor = min(try readLogStart(directory: directory), logEnd)
        let checkpoint = try readCleanerCheckpoint(directory: directory)
        state.firstDirtyOffset = min(checkpoint.firstDirtyOffset, logEnd)
        state.earliestDeleteHorizonMs = checkpoint.earliestDeleteHorizonMs
        return FilePartitionLog(topic: topic, partition: partition, directory: directory, runtime: runtime, state: state)
    }

    /// Rebuilds a segment from its log, checking every batch's length, magic, CRC and that offsets
    /// only grow (compaction leaves gaps between batches), and truncates the file after the last
    /// good batch.
    static func recover(_ segment: inout FileSegment, config: TopicConfig, logger: Logger) throws {
        let fileSize = try segment.log.size()
        let defaultChunk = 8 * 1024 * 1024
        var chunkSize = defaultChunk
        var position = 0
        var expectedOffset = segment.baseOffset
        scan: while position < fileSize {
            let chunk = try segment.log.read(at: position, count: min(chunkSize, fileSize - position))
            chunkSize = defaultChunk
            let (_, headers) = RecordBatchValidator.scanValidPrefix(chunk)
            var consumed = 0
            for header in headers {
                // Offsets were assigned in order on append; a batch that goes back is damage.
                guard header.baseOffset >= expectedOffset, header.lastOffsetDelta >= 0 else { break scan }
                segment.recordBatch(BatchFrame(header, position: position), indexInterval: config.indexIntervalBytes)
                consumed += header.totalSize
                position += header.totalSize
                expectedOffset = header.nextOffset
            }
            if consumed == chunk.readableBytes { continue }
            // The scan stopped inside the chunk. If only the chunk's end cut the batch short, read
            // again from it with room for the whole batch; otherwise the batch is bad.
            let remainingInChunk = chunk.readableBytes - consumed
            guard remainingInChunk >= BatchFrame.headerSize,
                let length = chunk.getInteger(at: consumed + 8, endianness: .big, as: Int32.self),
                length >= RecordBatchHeader.minimumBatchLength
            else { break }
            let batchSize = Int(length) + RecordBatchHeader.logOverhead
            guard batchSize > remainingInChunk, position + batchSize <= fileSize else { break }
            chunkSize = max(defaultChunk, batchSize)
        }
        if position < fileSize {
            logger.warning(
                "truncating torn or corrupt log tail",
                metadata: [
                    "segment": "\(segment.log.path)", "validBytes": "\(position)", "fileBytes": "\(fileSize)",
                    "logEndOffset": "\(expectedOffset)",
                ])
            try segment.log.truncate(to: position)
        }
        segment.size = position
        segment.nextOffset = expectedOffset
    }

    /// Loads a sealed segment from its index files when they agree with the log: they parse, and
    /// the batches after the last offset index entry run exactly to the end of the file and to the
    /// next segment's base offset. Otherwise recovers the segment and writes fresh indexes.
    static func load(_ segment: inout FileSegment, nextBaseOffset: Int64, config: TopicConfig, logger: Logger) throws {
        let size = try segment.log.size()
        let base = segment.baseOffset
        let indexPath = FileSegment.path(segment.directory, base, .index)
        let timeIndexPath = FileSegment.path(segment.directory, base, .timeIndex)
        // An index that is missing, unreadable or malformed is rebuilt, never an error.
        if PosixFile.exists(indexPath), PosixFile.exists(timeIndexPath),
            let offsetIndex = (try? PosixFile.readWhole(indexPath)).flatMap({ OffsetIndex.parse($0, segmentSize: size) }),
            let timeIndex = (try? PosixFile.readWhole(timeIndexPath)).flatMap({
                TimeIndex.parse($0, nextRelativeOffset: nextBaseOffset - base)
            })
        {
            var cursor = FrameCursor(
                file: try segment.log.open(), from: offsetIndex.count > 0 ? Int(offsetIndex.positions.last!) : 0, end: size)
            var expected = offsetIndex.count > 0 ? base + Int64(offsetIndex.relativeOffsets.last!) : base
            var tailMax: (timestamp: Int64, offset: Int64) = (-1, -1)
            var consistent = true
            do {
                while let frame = try cursor.next() {
                    guard frame.baseOffset >= expected else {
                        consistent = false
                        break
                    }
                    if frame.maxTimestamp > tailMax.timestamp { tailMax = (frame.maxTimestamp, frame.baseOffset) }
                    expected = frame.nextOffset
                }
            } catch {
                consistent = false
            }
            // A cleaned segment may end before the next one begins: its last batches were removed.
            if consistent && expected <= nextBaseOffset {
                segment.offsetIndex = offsetIndex
                segment.timeIndex = timeIndex
                segment.size = size
                segment.nextOffset = nextBaseOffset
                if let relative = timeIndex.lastRelativeOffset, timeIndex.lastTimestamp >= tailMax.timestamp {
                    segment.maxTimestamp = timeIndex.lastTimestamp
                    segment.offsetOfMaxTimestamp = base + Int64(relative)
                } else {
                    segment.maxTimestamp = tailMax.timestamp
                    segment.offsetOfMaxTimestamp = tailMax.offset
                }
                return
            }
        }
        logger.info("rebuilding segment indexes", metadata: ["segment": "\(segment.log.path)"])
        try recover(&segment, config: config, logger: logger)
        if segment.nextOffset > nextBaseOffset {
            logger.warning(
                "segment runs past the next one's base offset",
                metadata: ["segment": "\(segment.log.path)", "end": "\(segment.nextOffset)", "nextBase": "\(nextBaseOffset)"])
        }
        segment.seal()
        try segment.writeIndexes()
    }
}
