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
    /// Transactional offsets not yet decided, and where each committed offset was written.
    private(set) var transactional = TransactionalOffsets()
    private(set) var recordsRead = 0
    /// KIP-848 groups' records in log order, from the last time each group was created.
    private(set) var modern: [String: [ModernGroupRecord]] = [:]
    /// Topic names by id, for the consumer-group records that name topics by id.
    var topicName: (KafkaUUID) -> String? = { _ in nil }

    /// Applies a batch whose records sit at `position(record)` in the log's order.
    mutating func apply(_ batch: RecordBatch, position: (Record) -> Int64) throws {
        let header = batch.header
        if header.isControl {
            guard let record = batch.records.first else { return }
            let type = try ControlRecord.type(of: record)
            for (group, committed) in transactional.markerWritten(producerId: header.producerId, commit: type == .commit) {
                offsets[group, default: [:]].merge(committed) { _, new in new }
            }
            return
        }
        var undecided: [TransactionalOffsets.Pending] = []
        for record in batch.records {
            if !header.isTransactional, let (group, change) = try ModernGroupRecordCodec.decode(record, topicName: topicName) {
                recordsRead += 1
                if case .groupEpoch(nil) = change {
                    modern[group] = nil
                } else {
                    modern[group, default: []].append(change)
                }
                continue
            }
            let decoded = try OffsetsRecord(decoding: record)
            recordsRead += 1
            if header.isTransactional, case .offset(let group, let partition, let committed?) = decoded {
                undecided.append(.init(group: group, partition: partition, offset: committed, position: position(record)))
            } else if !header.isTransactional {
                apply(decoded, position: position(record))
            }
        }
        transactional.transactionalCommitted(producerId: header.producerId, undecided)
    }

    private mutating func apply(_ record: OffsetsRecord, position: Int64) {
        switch record {
        case .offset(let group, let partition, let committed?):
            offsets[group, default: [:]][partition] = committed
            transactional.committed(group: group, partition: partition, position: position)
        case .offset(let group, let partition, nil):
            offsets[group]?[partition] = nil
            if offsets[group]?.isEmpty == true { offsets[group] = nil }
            transactional.removed(group: group, partition: partition)
        case .group(let group, let snapshot):
            snapshots[group] = snapshot
        }
    }

    /// Applies a snapshot (the compacted records as batches, see `GroupCoordinator.snapshot`), then
    /// the partition from the snapshot's offset (or from its start without one).
    ///
    /// A snapshot replaced the segments below its offset, so it is trusted whole, even past the
    /// log's end (a tail lost in a power cut); `snapshotIsAhead` then tells the coordinator to write
    /// it again at the end. Snapshot records get positions below every log offset, in their order.
    static func replay(
        _ log: any PartitionLog, snapshot: (offset: Int64, batches: ByteBuffer)? = nil,
        topicName: @escaping (KafkaUUID) -> String? = { _ in nil }
    ) throws -> (replay: OffsetsLogReplay, snapshotIsAhead: Bool) {
        var replay = OffsetsLogReplay()
        replay.topicName = topicName
        var position = log.logStartOffset
        let end = log.logEndOffset
        var snapshotIsAhead = false
        if let snapshot {
            var next = Int64.min
            for batch in try RecordBatch.decodeAll(from: snapshot.batches) {
                try replay.apply(batch) { _ in defer { next += 1 }; return next }
            }
            position = max(position, snapshot.offset)
            snapshotIsAhead = snapshot.offset > end
        }
        while position < end {
            let chunk = try log.read(from: position, maxBytes: 1 << 20, limitOffset: end)
            let batches = try RecordBatch.decodeAll(from: chunk)
            guard let last = batches.last else { break }
            for batch in batches where batch.header.lastOffset >= position {
                try replay.apply(batch) { batch.offset(of: $0) }
            }
            position = last.header.nextOffset
        }
        return (replay, snapshotIsAhead)
    }

    /// The KIP-848 groups as they stood at the end of the log; one whose last member left is kept
    /// (empty) until its tombstone, as in Kafka.
    func modernGroups(config: GroupConfig, now: Int64) -> [String: ModernGroup] {
        var groups: [String: ModernGroup] = [:]
        for (id, records) in modern {
            var group = ModernGroup(groupId: id, config: config, now: now)
            for record in records { group.replay(record, now: now) }
            groups[id] = group
        }
        return groups
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
