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
    /// The most the pass's plan held at once (map, transactions, producers), as the plan counts it:
    /// bounded by the map, whatever the number of records cleaned.
    public var peakStateBytes = 0
    /// Abort markers the pass removed, their transactions forgotten by the aborted index.
    public var abortMarkersRemoved = 0

    package init(dirtyRatio: Double) {
        self.dirtyRatio = dirtyRatio
    }
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

    /// Where the last pass ended, and when a tombstone or marker it left may go: the horizon lives
    /// in the batches too, this only says when a pass is due without reading them.
    struct CleanerCheckpoint: Equatable {
        var firstDirtyOffset: Int64
        /// `.max` when the cleaned part holds nothing awaiting a horizon.
        var earliestDeleteHorizonMs: Int64
    }

    /// A checkpoint of 8 bytes predates the horizon: a pass is due at once, to stamp the horizons.
    static func readCleanerCheckpoint(directory: String) throws -> CleanerCheckpoint {
        let path = directory + "/" + cleanerCheckpointFileName
        guard PosixFile.exists(path) else { return CleanerCheckpoint(firstDirtyOffset: 0, earliestDeleteHorizonMs: .max) }
        let bytes = try StateDocument.decode(try PosixFile.readWhole(path), path: path)
        guard bytes.count == 8 || bytes.count == 16 else {
            throw StorageError.corrupt("\(path): \(bytes.count) bytes, expected 16")
        }
        func number(_ at: Int) -> Int64 { bytes[at..<(at + 8)].reduce(Int64(0)) { $0 << 8 | Int64($1) } }
        return CleanerCheckpoint(firstDirtyOffset: number(0), earliestDeleteHorizonMs: bytes.count == 16 ? number(8) : .min)
    }

    private func writeCleanerCheckpoint(_ checkpoint: CleanerCheckpoint) throws {
        let bytes = [checkpoint.firstDirtyOffset, checkpoint.earliestDeleteHorizonMs].flatMap { number in
            (0..<8).map { UInt8(truncatingIfNeeded: number >> (56 - 8 * $0)) }
        }
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
        var earliestDeleteHorizonMs: Int64

        func nextBase(after i: Int) -> Int64 { i + 1 < segments.count ? segments[i + 1].baseOffset : end }
    }

    /// The sealed segments from the log start that `SegmentPolicy` lets a pass take.
    private func cleanableRange(nowMs: Int64) throws -> CleanableRange? {
        try state.withLock { s in
            guard s.isOpen, !s.isDeleted, s.config.isCompacted else { return nil }
            let highWatermark = runtime.flushPolicy.fetchableEnd(logEnd: s.logEndOffset, durable: s.durableOffset)
            let count = SegmentPolicy.cleanableSegmentCount(
                baseOffsets: s.segments.map(\.baseOffset), maxTimestamps: s.segments.map(\.maxTimestamp),
                highWatermark: highWatermark, config: s.config, nowMs: nowMs)
            let segments = Array(s.segments.prefix(count))
            return CleanableRange(
                config: s.config, segments: segments, files: try segments.map { try $0.log.open() },
                end: s.segments[count].baseOffset, firstDirty: max(s.firstDirtyOffset, s.logStartOffset),
                earliestDeleteHorizonMs: s.earliestDeleteHorizonMs)
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
    /// reaches min.cleanable.dirty.ratio, the oldest dirty record is older than
    /// max.compaction.lag.ms, or a delete horizon an earlier pass stamped has passed. The pass holds
    /// the offset map (at most `dedupeBufferBytes`), state per transaction and producer, and one
    /// read chunk; what the map has no room for is left for later passes. `shouldContinue` is asked
    /// between segments, so shutdown does not wait for a throttled clean to finish.
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
        var oldestDirtyTimestamp: Int64?
        if let firstDirtySegment, range.config.maxCompactionLagMs < .max {
            var cursor = FrameCursor(
                file: range.files[firstDirtySegment], from: 0, end: range.segments[firstDirtySegment].size, chunkSize: 4096)
            oldestDirtyTimestamp = try cursor.next()?.maxTimestamp
        }
        guard SegmentPolicy.cleaningIsDue(
            cleanBytes: cleanBytes, dirtyBytes: dirtyBytes, oldestDirtyTimestamp: oldestDirtyTimestamp,
            earliestDeleteHorizonMs: range.earliestDeleteHorizonMs, config: range.config, nowMs: nowMs)
        else { return report }

        // Stage 1: headers only, for how the transactions ended.
        var scan = CleaningPlan.TransactionScan(firstDirty: range.firstDirty)
        for i in range.segments.indices {
            guard shouldContinue() else { return report }
            var reader = BatchReader(file: range.files[i], end: range.segments[i].size, throttle: throttle)
            while let (_, header, bytes) = try reader.next() {
                scan.read(try CleanedBatch.planBatch(header, bytes: bytes, withRecords: false), recordCount: Int(header.recordCount))
            }
            report.bytesRead += reader.bytesRead
        }
        // Stage 2: the dirty section's keys, until the map is full.
        var builder = CleaningPlan.MapBuilder(scan.transactions, firstDirty: range.firstDirty, mapBytes: dedupeBufferBytes)
        if let firstDirtySegment {
            mapping: for i in firstDirtySegment..<range.segments.count {
                guard shouldContinue() else { return report }
                var reader = BatchReader(file: range.files[i], end: range.segments[i].size, throttle: throttle)
                defer { report.bytesRead += reader.bytesRead }
                while let (_, header, bytes) = try reader.next() {
                    builder.read(try CleanedBatch.planBatch(header, bytes: bytes))
                    if builder.isDone { break mapping }
                }
            }
        }
        report.offsetMapBytes = builder.map.bytes
        // Stage 3: every batch decided in order into cleaned segments. A source joins the current
        // one while the bytes written plus its own (what it can at most leave) fit segment.bytes.
        var filter = CleaningPlan.Filter(builder, nowMs: nowMs, deleteRetentionMs: range.config.deleteRetentionMs)
        var writer: CleanedSegmentWriter?
        var announced = 0
        // The checkpoint moves only when every group was dealt with.
        var finished = true
        // A failed swap (retention or a delete took a source meanwhile) ends the pass: a later
        // group may drop a marker on the strength of records this one removes.
        func complete(_ writer: inout CleanedSegmentWriter) throws -> Bool {
            guard writer.changed else {
                try writer.discard()
                return true
            }
            let group = writer.sources
            let segment = try writer.finish(end: range.nextBase(after: group[group.count - 1]))
            let removedAbortMarkers = Array(filter.removedAbortMarkers[announced...])
            announced = filter.removedAbortMarkers.count
            // The records of those transactions went in an earlier pass, so whether the swap then
            // happens or not, no reader can meet them without the index naming them.
            let swapped = try abortMarkerRemoval.withLock { handler in
                if !removedAbortMarkers.isEmpty { handler?(removedAbortMarkers) }
                return try swap(group, range: range, cleaned: segment)
            }
            guard swapped else {
                try writer.discard()
                return false
            }
            report.bytesWritten += segment.size
            report.segmentsReplaced += group.count
            report.abortMarkersRemoved += removedAbortMarkers.count
            report.cleaned = true
            do {
                try segment.writeIndexes()
            } catch {
                runtime.logger.warning("could not write cleaned segment indexes", metadata: ["segment": "\(segment.log.path)", "error": "\(error)"])
            }
            return true
        }
        for i in range.segments.indices where range.segments[i].baseOffset < filter.end {
            guard shouldContinue() else {
                finished = false
                break
            }
            if var current = writer, let first = current.sources.first,
                current.written + range.segments[i].size > range.config.segmentBytes
                    || range.nextBase(after: i) - range.segments[first].baseOffset >= Int64(Int32.max)
            {
                writer = nil
                guard try complete(&current) else {
                    finished = false
                    break
                }
            }
            if writer == nil {
                writer = try CleanedSegmentWriter(
                    directory: directory, base: range.segments[i].baseOffset, files: runtime.files,
                    indexInterval: range.config.indexIntervalBytes, throttle: throttle)
            }
            report.bytesRead += try writer!.add(i, source: range.segments[i], file: range.files[i], filter: &filter)
        }
        if var current = writer {
            if !finished {
                try current.discard()
            } else if try !complete(&current) {
                finished = false
            }
        }
        report.peakStateBytes = max(scan.peakBytes, filter.peakBytes)
        // What an open transaction held back, or the offset map had no room for, stays dirty for
        // the next pass.
        if finished {
            let cleanedUpTo = max(range.firstDirty, min(range.end, filter.end))
            let horizon = filter.earliestDeleteHorizonMs ?? .max
            try writeCleanerCheckpoint(CleanerCheckpoint(firstDirtyOffset: cleanedUpTo, earliestDeleteHorizonMs: horizon))
            state.withLock {
                $0.firstDirtyOffset = max($0.firstDirtyOffset, cleanedUpTo)
                $0.earliestDeleteHorizonMs = horizon
            }
        }
        runtime.logger.info(
            "cleaned partition",
            metadata: [
                "partition": "\(topic)-\(partition)", "dirtyRatio": "\(report.dirtyRatio)",
                "bytesRead": "\(report.bytesRead)", "bytesWritten": "\(report.bytesWritten)",
                "segmentsReplaced": "\(report.segmentsReplaced)",
                "earliestDeleteHorizonMs": "\(filter.earliestDeleteHorizonMs.map(String.init) ?? "none")",
                "durationMs": "\((CleanerThrottle.monotonicNs() - startedNs) / 1_000_000)",
            ])
        return report
    }

    public func setAbortMarkerRemovalHandler(_ handler: @escaping @Sendable ([CleaningPlan.AbortMarker]) -> Void) {
        abortMarkerRemoval.withLock { $0 = handler }
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
}
