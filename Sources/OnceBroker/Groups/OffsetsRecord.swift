import KafkaProtocol
import NIOCore
import OnceCore

/// One record of the internal `__consumer_offsets` topic, laid out as Kafka lays out its own (key
/// version 1 = committed offset, key version 2 = group metadata; a null value is a tombstone), so
/// tools that know Kafka's format can read it.
///
/// Transactional offset commits will be the same offset records in batches that carry a producer id
/// and the transactional bit; a later COMMIT or ABORT marker decides whether they count (see
/// `OffsetsLogReplay`).
enum OffsetsRecord: Equatable {
    case offset(group: String, partition: GroupPartition, CommittedOffset?)
    case group(String, GroupSnapshot?)

    static let offsetKeyVersion: Int16 = 1
    static let groupKeyVersion: Int16 = 2
    static let offsetValueVersion: Int16 = 3
    static let groupValueVersion: Int16 = 3

    var groupId: String {
        switch self {
        case .offset(let group, _, _): group
        case .group(let group, _): group
        }
    }

    func record() -> Record {
        var key = ByteBufferAllocator().buffer(capacity: 64)
        var value: ByteBuffer?
        switch self {
        case .offset(let group, let partition, let committed):
            key.writeInteger(Self.offsetKeyVersion)
            key.writeKafkaString(group, compact: false)
            key.writeKafkaString(partition.topic, compact: false)
            key.writeInteger(partition.partition)
            if let committed {
                var v = ByteBufferAllocator().buffer(capacity: 64)
                v.writeInteger(Self.offsetValueVersion)
                v.writeInteger(committed.offset)
                v.writeInteger(committed.leaderEpoch)
                v.writeKafkaString(committed.metadata ?? "", compact: false)
                v.writeInteger(committed.commitTimestampMs)
                value = v
            }
        case .group(let group, let snapshot):
            key.writeInteger(Self.groupKeyVersion)
            key.writeKafkaString(group, compact: false)
            if let snapshot { value = Self.encode(snapshot) }
        }
        return Record(offsetDelta: 0, key: Array(buffer: key), value: value.map { Array(buffer: $0) })
    }

    private static func encode(_ s: GroupSnapshot) -> ByteBuffer {
        var v = ByteBufferAllocator().buffer(capacity: 256)
        v.writeInteger(groupValueVersion)
        v.writeKafkaString(s.protocolType ?? "", compact: false)
        v.writeInteger(s.generationId)
        v.writeKafkaString(s.protocolName, compact: false)
        v.writeKafkaString(s.leaderId, compact: false)
        v.writeInteger(s.stateTimestampMs)
        v.writeKafkaArrayCount(s.members.count, compact: false)
        for m in s.members {
            v.writeKafkaString(m.memberId, compact: false)
            v.writeKafkaString(m.groupInstanceId, compact: false)
            v.writeKafkaString(m.clientId, compact: false)
            v.writeKafkaString(m.clientHost, compact: false)
            v.writeInteger(m.rebalanceTimeoutMs)
            v.writeInteger(m.sessionTimeoutMs)
            v.writeKafkaBytes(m.subscription, compact: false)
            v.writeKafkaBytes(m.assignment, compact: false)
        }
        return v
    }

    /// Decodes a stored record. Key versions 0 and 1 share a layout, as do value versions 1-3 of an
    /// offset for the fields kept here.
    init(decoding record: Record) throws {
        guard let keyBytes = record.key else { throw KafkaProtocolError.invalid("__consumer_offsets record without key") }
        var key = ByteBuffer(bytes: keyBytes)
        let keyVersion: Int16 = try key.readKafkaInt()
        let group = try key.readKafkaString(compact: false)
        switch keyVersion {
        case 0, 1:
            let topic = try key.readKafkaString(compact: false)
            let partition: Int32 = try key.readKafkaInt()
            let tp = GroupPartition(topic, partition)
            guard let valueBytes = record.value else {
                self = .offset(group: group, partition: tp, nil)
                return
            }
            var v = ByteBuffer(bytes: valueBytes)
            let version: Int16 = try v.readKafkaInt()
            let offset: Int64 = try v.readKafkaInt()
            let epoch: Int32 = version >= 3 ? try v.readKafkaInt() : -1
            let metadata = try v.readKafkaString(compact: false)
            let timestamp: Int64 = try v.readKafkaInt()
            self = .offset(
                group: group, partition: tp,
                CommittedOffset(offset: offset, leaderEpoch: epoch, metadata: metadata, commitTimestampMs: timestamp))
        case 2:
            guard let valueBytes = record.value else {
                self = .group(group, nil)
                return
            }
            var v = ByteBuffer(bytes: valueBytes)
            let version: Int16 = try v.readKafkaInt()
            guard (0...3).contains(version) else { throw KafkaProtocolError.invalid("group metadata value v\(version)") }
            let protocolType = try v.readKafkaString(compact: false)
            let generation: Int32 = try v.readKafkaInt()
            let protocolName = try v.readKafkaNullableString(compact: false)
            let leader = try v.readKafkaNullableString(compact: false)
            let stateTimestamp: Int64 = version >= 2 ? try v.readKafkaInt() : -1
            let count = try v.readKafkaArrayCount(compact: false) ?? 0
            var members: [GroupSnapshot.Member] = []
            for _ in 0..<count {
                let memberId = try v.readKafkaString(compact: false)
                let instance = version >= 3 ? try v.readKafkaNullableString(compact: false) : nil
                let clientId = try v.readKafkaString(compact: false)
                let clientHost = try v.readKafkaString(compact: false)
                let rebalanceTimeout: Int32 = version >= 1 ? try v.readKafkaInt() : -1
                let sessionTimeout: Int32 = try v.readKafkaInt()
                let subscription = try v.readKafkaBytes(compact: false)
                let assignment = try v.readKafkaBytes(compact: false)
                members.append(
                    GroupSnapshot.Member(
                        memberId: memberId, groupInstanceId: instance, clientId: clientId, clientHost: clientHost,
                        rebalanceTimeoutMs: rebalanceTimeout < 0 ? sessionTimeout : rebalanceTimeout,
                        sessionTimeoutMs: sessionTimeout, subscription: subscription, assignment: assignment))
            }
            self = .group(
                group,
                GroupSnapshot(
                    groupId: group, protocolType: protocolType.isEmpty ? nil : protocolType, generationId: generation,
                    protocolName: protocolName, leaderId: leader, stateTimestampMs: stateTimestamp, members: members))
        default:
            throw KafkaProtocolError.invalid("__consumer_offsets key v\(keyVersion)")
        }
    }

    /// A batch of records as the coordinator appends them: non-transactional, no producer id.
    static func batch(_ records: [OffsetsRecord], timestamp: Int64) -> ByteBuffer {
        RecordBatch.encode(records: records.map { $0.record() }, baseTimestamp: timestamp)
    }
}
