import Glibc
import KafkaProtocol
import NIOCore
import OnceCore

/// What one cleaner pass over one partition found and did.
public struct CleaningReport: Sendable, Equatable {
    /// Bytes of the cleanable range not cleaned before the pass, over all its bytes; 0 when
    /// nothing is cleanable.
    public var dirtyRatio: Double
    public var cleaned = false
    public var bytesRead = 0
    public var bytesWritten = 0
    /// Source segments replaced by cleaned ones.
    public var segmentsReplaced = 0
    /// Bytes of the offset map the pass used.
    public var offsetMapBytes = 0
}

/// Log compaction for the file engine. The rules come from `CleaningPlan`; this file reads the
/// sealed segments below the cleanable end, writes the surviving batches under a temporary name,
/// and swaps them in. Appends never wait for it (it never touches the active segment, and reads
/// and writes outside the partition lock), and fetches keep reading the old files they hold.
///
/// Crash safety: the cleaned file is written as `<base>.log.cleaned` and fsynced, then renamed to
/// `<base>.log.<end>.swap`, which commits the swap: the name says which segments it replaces. The
/// sources are then deleted and the swap renamed over `<base>.log`. Opening a partition deletes
/// any `.cleaned` file and finishes any `.swap`, so a kill -9 at any point leaves either the old
/// segments or the cleaned one in use, never part of each.
extension FilePartitionLog {
    static let cleanerCheckpointFileName = "cleaner-offset-checkpoint"
    static let cleanedSuffix = ".cleaned"
    static let swapSuffix = ".swap"

    static func cleanedPath(_ directory: String, _ base: Int64) -> String {
        FileSegment.path(directory, base, .log) + cleanedSuffix
    }

    static func swapPath(_ directory: String, _ base: Int64, _ end: Int64) -> String {
        let digits = String(end)
        return FileSegment.path(directory, base, .log) + "."
            + String(repeating: "0", count: max(0, 20 - digits.count)) + digits + swapSuffix
    }

    /// The base and end offsets a swap file name encodes.
    static func swapRange(fromFileName name: String) -> (base: Int64, end: Int64)? {
        guard name.hasSuffix(swapSuffix) else { return nil }
        let parts = name.dropLast(swapSuffix.count).split(separator: ".")
        guard parts.count == 3, parts[1] == "log", let base = Int64(parts[0]), let end = Int64(parts[2]), base < end
        else { return nil }
        return (base, end)
    }

    /// Finishes a committed swap: the other sources go, then the swap takes the first source's name.
    /// Idempotent, so recovery can repeat it after a crash in the middle.
    static func completeSwap(directory: String, base: Int64, end: Int64, sourceBases: [Int64]) throws {
        for source in sourceBases where source > base && source < end {
            for kind in [FileSegment.FileKind.index, .timeIndex, .log] {
                try PosixFile.remove(FileSegment.path(directory, source, kind))
            }
        }
        for kind in [FileSegment.FileKind.index, .timeIndex] { try PosixFile.remove(FileSegment.path(directory, base, kind)) }
        let swap = swapPath(directory, base, end)
        guard rename(swap, FileSegment.path(directory, base, .log)) == 0 else { throw PosixFile.error("rename", swap) }
        try PosixFile.syncDirectory(directory)
    }

    /// Finishes every swap a crash interrupted; returns whether there was one.
    static func recoverSwaps(directory: String, names: [String]) throws -> Bool {
        let bases = names.compactMap { FileSegment.baseOffset(fromFileName: $0, kind: .log) }
        var found = false
        for name in names where name.hasSuffix(swapSuffix) {
            guard let (base, end) = swapRange(fromFileName: name) else {
                try PosixFile.remove(directory + "/" + name)
                continue
            }
            try completeSwap(directory: directory, base: base, end: end, sourceBases: bases)
            found = true
        }
        return found
    }

    static func readCleanerCheckpoint(directory: String) throws -> Int64 {
        let path = directory + "/" + cleanerCheckpointFileName
        guard PosixFile.exists(path) else { return 0 }
        let bytes = try StateDocument.decode(try PosixFile.readWhole(path), path: path)
        guard bytes.count == 8 else { throw StorageError.corrupt("\(path): \(bytes.count) bytes, expected 8") }
        return bytes.reduce(Int64(0)) { $0 << 8 | Int64($1) }
    }

    private func writeCleanerCheckpoint(_ offset: Int64) throws {
        let bytes = (0..<8).map { UInt8(truncatingIfNeeded: offset >> (56 - 8 * $0)) }
        try PosixFile.writeAtomically(
            StateDocument.encode(bytes), to: directory + "/" + Self.cleanerCheckpointFileName, directory: directory)
    }

    private struct CleanableRange {
        var config: TopicConfig
        var segments: [FileSegment]
        /// Pinned descriptors of `segments`, so they stay readable whatever happens to the names.
        var files: [PosixFile]
        /// The first offset not cleaned: the active segment's base, or an earlier segment's.
        var end: Int64
        var firstDirty: Int64

        func nextBase(after i: Int) -> Int64 { i + 1 < segments.count ? segments[i + 1].baseOffset : end }
    }

    /// The sealed segments from the log start that may be cleaned: wholly below the high watermark
    /// (nothing a power loss may still erase is rewritten) and, by their largest timestamp, older
    /// than min.compaction.lag.ms.
    private func cleanableRange(nowMs: Int64) throws -> CleanableRange? {
        try state.withLock { s in
            guard s.isOpen, !s.isDeleted, s.config.isCompacted else { return nil }
            let lag = s.config.minCompactionLagMs
            let highWatermark = runtime.flushPolicy == .always ? s.durableOffset : s.logEndOffset
            var count = 0
            while count + 1 < s.segments.count, s.segments[count + 1].baseOffset <= highWatermark {
                if lag > 0 && nowMs - s.segments[count].maxTimestamp < lag { break }
                count += 1
            }
            let segments = Array(s.segments.prefix(count))
            return CleanableRange(
                config: s.config, segments: segments, files: try segments.map { try $0.log.open() },
                end: s.segments[count].baseOffset, firstDirty: max(s.firstDirtyOffset, s.logStartOffset))
        }
    }

    /// Rolls an active segment older than segment.ms, so a partition that stopped receiving
    /// writes still becomes cleanable.
    private func rollIfAged(nowMs: Int64) throws {
        try state.withLock { s in
            guard s.isOpen, !s.isDeleted else { return }
            let last = s.segments.count - 1
            if SegmentPolicy.activeSegmentAged(
                activeSize: s.segments[last].size, firstAppendMs: s.segments[last].firstAppendMs, config: s.config,
                nowMs: nowMs)
            {
                try roll(&s, nowMs: nowMs)
            }
        }
    }

    /// One cleaner pass: nil for a partition that is not compacted. Cleans when the dirty ratio
    /// reaches min.cleanable.dirty.ratio, or the oldest dirty record is older than
    /// max.compaction.lag.ms. The offset map takes at most `dedupeBufferBytes`; what does not fit is
    /// left for later passes. `shouldContinue` is asked between segments, so shutdown does not wait
    /// for a throttled clean to finish.
    func clean(
        nowMs: Int64, throttle: CleanerThrottle, dedupeBufferBytes: Int = FileLogStorage.defaultDedupeBufferBytes,
        shouldContinue: () -> Bool = { true }
    ) throws -> CleaningReport? {
        try rollIfAged(nowMs: nowMs)
        guard let range = try cleanableRange(nowMs: nowMs) else { return nil }
        let startedNs = CleanerThrottle.monotonicNs()
        var cleanBytes = 0
        var dirtyBytes = 0
        var firstDirtySegment: Int?
        for (i, segment) in range.segments.enumerated() {
            if range.nextBase(after: i) <= range.firstDirty {
                cleanBytes += segment.size
            } else {
                dirtyBytes += segment.size
                if firstDirtySegment == nil { firstDirtySegment = i }
            }
        }
        let total = cleanBytes + dirtyBytes
        var report = CleaningReport(dirtyRatio: total > 0 ? Double(dirtyBytes) / Double(total) : 0)
        guard dirtyBytes > 0, let firstDirtySegment else { return report }
        var overdue = false
        if range.config.maxCompactionLagMs < .max {
            var cursor = FrameCursor(
                file: range.files[firstDirtySegment], from: 0, end: range.segments[firstDirtySegment].size, chunkSize: 4096)
            if let first = try cursor.next() { overdue = nowMs - first.maxTimestamp > range.config.maxCompactionLagMs }
        }
        guard report.dirtyRatio >= range.config.minCleanableDirtyRatio || overdue else { return report }

        // Pass 1: every batch's keys and kind, for the plan.
        var batches: [CleaningPlan.Batch] = []
        var places: [BatchPlace] = []
        for (i, segment) in range.segments.enumerated() {
            guard shouldContinue() else { return report }
            let horizonPassed = segment.lastAppendMs + range.config.deleteRetentionMs <= nowMs
            var reader = BatchReader(file: range.files[i], end: segment.size, throttle: throttle)
            while let (position, header, bytes) = try reader.next() {
                let records = try Self.records(of: header, in: bytes)
                batches.append(Self.planBatch(header, records: records, horizonPassed: horizonPassed))
                places.append(BatchPlace(segment: i, position: position, size: header.totalSize,
                                         recordSizes: records.map(\.encodedSize)))
            }
            report.bytesRead += reader.bytesRead
        }
        let plan = CleaningPlan.plan(batches, firstDirty: range.firstDirty, mapBytes: dedupeBufferBytes)
        let outcomes = plan.outcomes
        report.offsetMapBytes = plan.mapBytes

        // Sources are grouped, in order, into cleaned segments no larger than segment.bytes.
        var retained = [Int](repeating: 0, count: range.segments.count)
        var changed = [Bool](repeating: false, count: range.segments.count)
        for (j, place) in places.enumerated() {
            switch outcomes[j] {
            case .keep: retained[place.segment] += place.size
            case .remove: changed[place.segment] = true
            case .keepRecords(let kept):
                changed[place.segment] = true
                retained[place.segment] += RecordBatchHeader.size + kept.reduce(0) { $0 + place.recordSizes[$1] }
            }
        }
        var groups: [[Int]] = []
        var current: [Int] = []
        var currentSize = 0
        for i in range.segments.indices {
            if let first = current.first,
                currentSize + retained[i] > range.config.segmentBytes
                    || range.nextBase(after: i) - range.segments[first].baseOffset >= Int64(Int32.max)
            {
                groups.append(current)
                current = []
                currentSize = 0
            }
            current.append(i)
            currentSize += retained[i]
        }
        if !current.isEmpty { groups.append(current) }

        var placesBySegment = [[Int]](repeating: [], count: range.segments.count)
        for (j, place) in places.enumerated() { placesBySegment[place.segment].append(j) }
        // The checkpoint moves only when every group was dealt with.
        var finished = true
        for group in groups {
            if group.count == 1 && !changed[group[0]] { continue }
            guard shouldContinue() else {
                finished = false
                break
            }
            let (segment, written) = try writeCleaned(
                group, range: range, places: places, placesBySegment: placesBySegment, outcomes: outcomes,
                throttle: throttle, report: &report)
            // A failed swap (retention or a delete took a source meanwhile) ends the pass: a later
            // group may drop a marker on the strength of records this one removes.
            guard try swap(group, range: range, cleaned: segment) else {
                try PosixFile.remove(Self.cleanedPath(directory, segment.baseOffset))
                finished = false
                break
            }
            report.bytesWritten += written
            report.segmentsReplaced += group.count
            report.cleaned = true
            do {
                try segment.writeIndexes()
            } catch {
                runtime.logger.warning("could not write cleaned segment indexes", metadata: ["segment": "\(segment.log.path)", "error": "\(error)"])
            }
        }
        // What an open transaction held back, or the offset map had no room for, stays dirty for
        // the next pass.
        let cleanedUpTo = min(range.end, plan.end ?? range.end)
        if finished && cleanedUpTo > range.firstDirty {
            try writeCleanerCheckpoint(cleanedUpTo)
            state.withLock { $0.firstDirtyOffset = max($0.firstDirtyOffset, cleanedUpTo) }
        }
        runtime.logger.info(
            "cleaned partition",
            metadata: [
                "partition": "\(topic)-\(partition)", "dirtyRatio": "\(report.dirtyRatio)",
                "bytesRead": "\(report.bytesRead)", "bytesWritten": "\(report.bytesWritten)",
                "segmentsReplaced": "\(report.segmentsReplaced)",
                "durationMs": "\((CleanerThrottle.monotonicNs() - startedNs) / 1_000_000)",
            ])
        return report
    }

    private struct BatchPlace {
        var segment: Int
        var position: Int
        var size: Int
        var recordSizes: [Int]
    }

    /// Writes one group's surviving batches to `<base>.log.cleaned`, fsynced, with the newest source's
    /// modification time, so retention and the tombstone horizon keep counting from the original
    /// writes. Returns the segment as it will be once swapped in, and the bytes written.
    private func writeCleaned(
        _ group: [Int], range: CleanableRange, places: [BatchPlace], placesBySegment: [[Int]],
        outcomes: [CleaningPlan.Outcome], throttle: CleanerThrottle, report: inout CleaningReport
    ) throws -> (FileSegment, Int) {
        let base = range.segments[group[0]].baseOffset
        let path = Self.cleanedPath(directory, base)
        try PosixFile.remove(path)
        let out = try PosixFile.openFile(path, create: true)
        let lastAppendMs = group.map { range.segments[$0].lastAppendMs }.max()!
        var segment = FileSegment(
            baseOffset: base, directory: directory,
            log: SegmentFile(path: FileSegment.path(directory, base, .log), cache: runtime.files), lastAppendMs: lastAppendMs)
        var pending = ByteBufferAllocator().buffer(capacity: 1 << 20)
        var written = 0
        func flush() throws {
            guard pending.readableBytes > 0 else { return }
            try out.write(pending, at: written)
            throttle.account(pending.readableBytes)
            written += pending.readableBytes
            pending.clear()
        }
        for i in group {
            var reader = BatchReader(file: range.files[i], end: range.segments[i].size, throttle: throttle)
            defer { report.bytesRead += reader.bytesRead }
            for j in placesBySegment[i] {
                // The sources are sealed, so the second read finds the batches the plan saw.
                guard let (position, _, original) = try reader.next(), position == places[j].position else {
                    throw StorageError.corrupt("\(range.segments[i].log.path) changed while being cleaned")
                }
                var batch: ByteBuffer
                switch outcomes[j] {
                case .remove:
                    continue
                case .keep:
                    batch = original
                case .keepRecords(let kept):
                    batch = try Self.rewrite(original, keeping: kept)
                }
                let header = try RecordBatchHeader(reading: batch, at: batch.readerIndex)
                segment.recordBatch(
                    BatchFrame(header, position: written + pending.readableBytes), indexInterval: range.config.indexIntervalBytes)
                pending.writeBuffer(&batch)
                if pending.readableBytes >= 1 << 20 { try flush() }
            }
        }
        try flush()
        segment.nextOffset = range.nextBase(after: group[group.count - 1])
        segment.seal()
        try out.sync()
        let mtime = timespec(tv_sec: Int(lastAppendMs / 1000), tv_nsec: Int(lastAppendMs % 1000) * 1_000_000)
        var times = [mtime, mtime]
        guard futimens(out.fd, &times) == 0 else { throw PosixFile.error("futimens", path) }
        return (segment, written)
    }

    /// Commits and completes one group's swap under the partition lock, if its sources are still
    /// the partition's segments (and still sealed).
    private func swap(_ group: [Int], range: CleanableRange, cleaned: FileSegment) throws -> Bool {
        try state.withLock { s in
            guard s.isOpen, !s.isDeleted else { return false }
            let sources = group.map { range.segments[$0] }
            guard let start = s.segments.firstIndex(where: { $0.log === sources[0].log }),
                start + sources.count < s.segments.count,
                zip(s.segments[start..<(start + sources.count)], sources).allSatisfy({ $0.log === $1.log })
            else { return false }
            let end = range.nextBase(after: group[group.count - 1])
            let cleanedPath = Self.cleanedPath(directory, cleaned.baseOffset)
            let swapPath = Self.swapPath(directory, cleaned.baseOffset, end)
            guard rename(cleanedPath, swapPath) == 0 else { throw PosixFile.error("rename", cleanedPath) }
            try PosixFile.syncDirectory(directory)
            try Self.completeSwap(directory: directory, base: cleaned.baseOffset, end: end, sourceBases: sources.map(\.baseOffset))
            s.unsynced.removeAll { file in sources.contains { $0.log === file } }
            for source in sources { source.log.release() }
            s.segments.replaceSubrange(start..<(start + sources.count), with: [cleaned])
            return true
        }
    }

    static func planBatch(_ header: RecordBatchHeader, records: [Record], horizonPassed: Bool) -> CleaningPlan.Batch {
        let kind: CleaningPlan.Kind
        if header.isControl {
            if let first = records.first, let marker = try? ControlRecord(decoding: first), marker.type.isTransactionMarker {
                kind = .marker(commit: marker.type == .commit)
            } else {
                kind = .otherControl
            }
        } else {
            kind = .data
        }
        return CleaningPlan.Batch(
            baseOffset: header.baseOffset, lastOffset: header.lastOffset, producerId: header.producerId,
            isTransactional: header.isTransactional, kind: kind,
            records: kind == .data
                ? records.map { .init(offset: header.baseOffset + Int64($0.offsetDelta), key: $0.key, isTombstone: $0.value == nil) }
                : [],
            deleteHorizonPassed: horizonPassed)
    }

    /// A stored batch's records, inflated when compressed.
    static func records(of header: RecordBatchHeader, in batch: ByteBuffer) throws -> [Record] {
        if header.compression == .none {
            var bytes = batch
            return try RecordBatch.decode(from: &bytes).records
        }
        let inflated = try batch.withUnsafeReadableBytes { raw in
            try RecordDecompressor.decompress(
                header.compression, UnsafeRawBufferPointer(rebasing: raw[RecordBatchHeader.size...]), limit: Int(Int32.max)
            ).get()
        }
        var buffer = ByteBuffer(bytes: inflated)
        return try (0..<header.recordCount).map { _ in try Record.decode(from: &buffer) }
    }

    /// The batch with only the records at `kept`: the same base and last offset, timestamps and
    /// producer fields (so the producer's last sequence survives), compressed again with its codec
    /// as Kafka's cleaner does, with a new length and CRC. An emptied batch is left uncompressed.
    static func rewrite(_ batch: ByteBuffer, keeping kept: [Int]) throws -> ByteBuffer {
        var header = try RecordBatchHeader(reading: batch, at: batch.readerIndex)
        let records = try Self.records(of: header, in: batch)
        var section = ByteBufferAllocator().buffer(capacity: kept.reduce(0) { $0 + records[$1].encodedSize })
        for i in kept { records[i].encode(into: &section) }
        let codec = kept.isEmpty ? .none : header.compression
        let body = try section.withUnsafeReadableBytes { try RecordCompressor.compress(codec, $0) }
        header.attributes = RecordBatchHeader.attributes(
            compression: codec, timestampType: header.timestampType, isTransactional: header.isTransactional,
            isControl: header.isControl, hasDeleteHorizon: header.hasDeleteHorizon)
        header.recordCount = Int32(kept.count)
        header.batchLength = Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead + body.count)
        header.crc = 0
        var out = ByteBufferAllocator().buffer(capacity: RecordBatchHeader.size + body.count)
        header.write(into: &out)
        out.writeBytes(body)
        let crc = out.withUnsafeReadableBytes {
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[RecordBatchHeader.attributesOffset...]))
        }
        out.setInteger(crc, at: RecordBatchHeader.crcOffset, endianness: .big)
        return out
    }
}
