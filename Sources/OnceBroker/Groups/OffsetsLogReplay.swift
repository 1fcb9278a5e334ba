import KafkaProtocol
import NIOCore
import OnceCore
import OnceStorage

/// Rebuilds every group's metadata and committed offsets from `__consumer_offsets`, in log order,
/// in this one place. Plain batches apply as read. Transactional batches (offsets a transactional
/// producer sent with TxnOffsetCommit) are held per producer until its COMMIT marker applies them or
/// its ABORT marker drops them, so an aborted transaction never moves a group's position.
struct OffsetsLogReplay {
    private(set) var snapshots: [String: GroupSnapshot] = [:]
    private(set) var offsets: [String: [GroupPartition: CommittedOffset]] = [:]
    /// Transactional offset records not yet decided, by producer id.
    private(set) var pending: [Int64: [OffsetsRecord]] = [:]
    private(set) var recordsRead = 0

    mutating func apply(_ batch: RecordBatch) throws {
        let header = batch.header
        if header.isControl {
            guard let record = batch.records.first else { return }
            let type = try ControlRecord.type(of: record)
            let decided = pending.removeValue(forKey: header.producerId) ?? []
            if type == .commit { decided.forEach { apply($0) } }
            return
        }
        for record in batch.records {
            let decoded = try OffsetsRecord(decoding: record)
            recordsRead += 1
            if header.isTransactional {
                pending[header.producerId, default: []].append(decoded)
            } else {
                apply(decoded)
            }
        }
    }

    mutating func apply(_ record: OffsetsRecord) {
        switch record {
        case .offset(let group, let partition, let committed?):
            offsets[group, default: [:]][partition] = committed
        case .offset(let group, let partition, nil):
            offsets[group]?[partition] = nil
            if offsets[group]?.isEmpty == true { offsets[group] = nil }
        case .group(let group, let snapshot):
            snapshots[group] = snapshot
        }
    }

    /// Applies a snapshot (the compacted records as batches, see `GroupCoordinator.snapshot`), then
    /// the partition from the snapshot's offset (or from its start without one).
    static func replay(_ log: any PartitionLog, snapshot: (offset: Int64, batches: ByteBuffer)? = nil) throws -> OffsetsLogReplay {
        var replay = OffsetsLogReplay()
        var position = log.logStartOffset
        let end = log.logEndOffset
        // A snapshot past the log's end belongs to a log that is gone; the log alone then decides.
        if let snapshot, snapshot.offset <= end {
            for batch in try RecordBatch.decodeAll(from: snapshot.batches) { try replay.apply(batch) }
            position = max(position, snapshot.offset)
        }
        while position < end {
            let chunk = try log.read(from: position, maxBytes: 1 << 20, limitOffset: end)
            let batches = try RecordBatch.decodeAll(from: chunk)
            guard let last = batches.last else { break }
            for batch in batches where batch.header.lastOffset >= position { try replay.apply(batch) }
            position = last.header.nextOffset
        }
        return replay
    }

    /// The groups as they stood at the end of the log.
    func groups(config: GroupConfig, now: Int64) -> [String: ConsumerGroup] {
        var groups: [String: ConsumerGroup] = [:]
        for (id, snapshot) in snapshots {
            groups[id] = ConsumerGroup(restoring: snapshot, config: config, now: now)
        }
        for (id, committed) in offsets {
            var group = groups[id] ?? ConsumerGroup(groupId: id, config: config, now: now)
            group.offsetsCommitted(committed)
            groups[id] = group
        }
        return groups
    }
}
