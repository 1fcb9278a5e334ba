import KafkaProtocol
import NIOCore
import OnceCore

/// KIP-848 group records in `__consumer_offsets`, laid out as Kafka's group coordinator writes them
/// (key versions 3 to 8 with the ConsumerGroup*Key/Value schemas, flexible values at version 0),
/// so Kafka's tools can read them. Kafka names topics by id there; OnceCore speaks names, and the
/// translation happens here: a topic deleted since is dropped on the way back.
enum ModernGroupRecordCodec {
    static let keyVersions: ClosedRange<Int16> = 3...8
    private static let valueVersion: Int16 = 0

    static func record(group: String, _ change: ModernGroupRecord, topicId: (String) -> KafkaUUID?) -> Record {
        var key = ByteBufferAllocator().buffer(capacity: 64)
        var value: ByteBuffer? = ByteBufferAllocator().buffer(capacity: 64)
        value!.writeInteger(valueVersion)
        var tagged: [(tag: UInt32, value: ByteBuffer)] = []
        func keyed(_ version: Int16, member: String? = nil) {
            key.writeInteger(version)
            key.writeKafkaString(group, compact: false)
            if let member { key.writeKafkaString(member, compact: false) }
        }
        switch change {
        case .groupEpoch(let epoch):
            keyed(3)
            if let epoch { value!.writeInteger(epoch) } else { value = nil }
        case .subscriptionMetadata(let counts):
            keyed(4)
            if let counts {
                let known = counts.keys.sorted().compactMap { name in topicId(name).map { (name, $0, counts[name]!) } }
                value!.writeKafkaArrayCount(known.count, compact: true)
                for (name, id, count) in known {
                    value!.writeKafkaUUID(id)
                    value!.writeKafkaString(name, compact: true)
                    value!.writeInteger(count)
                    value!.writeKafkaArrayCount(0, compact: true)
                    value!.writeEmptyTaggedFields()
                }
            } else { value = nil }
        case .member(let id, let member):
            keyed(5, member: id)
            if let m = member {
                value!.writeKafkaString(m.instanceId, compact: true)
                value!.writeKafkaString(m.rackId, compact: true)
                value!.writeKafkaString(m.clientId, compact: true)
                value!.writeKafkaString(m.clientHost, compact: true)
                value!.writeKafkaArrayCount(m.subscribedTopicNames.count, compact: true)
                for name in m.subscribedTopicNames { value!.writeKafkaString(name, compact: true) }
                value!.writeKafkaString(m.subscribedTopicRegex, compact: true)
                value!.writeInteger(m.rebalanceTimeoutMs)
                value!.writeKafkaString(m.serverAssignor, compact: true)
                if let classic = m.classic { tagged.append((0, encode(classic))) }
            } else { value = nil }
        case .targetEpoch(let epoch):
            keyed(6)
            if let epoch { value!.writeInteger(epoch) } else { value = nil }
        case .targetMember(let id, let target):
            keyed(7, member: id)
            if let target { write(target, into: &value!, topicId: topicId) } else { value = nil }
        case .currentAssignment(let id, let member):
            keyed(8, member: id)
            if let m = member {
                value!.writeInteger(m.memberEpoch)
                value!.writeInteger(m.previousMemberEpoch)
                value!.writeInteger(m.state.rawValue)
                write(m.assigned, into: &value!, topicId: topicId)
                write(m.pendingRevocation, into: &value!, topicId: topicId)
            } else { value = nil }
        }
        if value != nil { value!.writeTaggedFields(tagged, unknown: []) }
        return Record(offsetDelta: 0, key: Array(buffer: key), value: value.map { Array(buffer: $0) })
    }

    /// ConsumerGroupMemberMetadata's ClassicMemberMetadata (tag 0): a classic member's session
    /// timeout and protocols, which the group needs to turn back into a classic one.
    private static func encode(_ classic: ClassicMemberMetadata) -> ByteBuffer {
        var b = ByteBufferAllocator().buffer(capacity: 64)
        b.writeInteger(classic.sessionTimeoutMs)
        b.writeKafkaArrayCount(classic.protocols.count, compact: true)
        for p in classic.protocols {
            b.writeKafkaString(p.name, compact: true)
            b.writeKafkaBytes(p.metadata, compact: true)
            b.writeEmptyTaggedFields()
        }
        b.writeEmptyTaggedFields()
        return b
    }

    private static func decodeClassic(_ b: inout ByteBuffer) throws -> ClassicMemberMetadata {
        let sessionTimeoutMs: Int32 = try b.readKafkaInt()
        var protocols: [GroupProtocol] = []
        for _ in 0..<(try b.readKafkaArrayCount(compact: true) ?? 0) {
            let name = try b.readKafkaString(compact: true)
            let metadata = try b.readKafkaBytes(compact: true)
            _ = try b.readTaggedFields { _, _ in false }
            protocols.append(GroupProtocol(name: name, metadata: metadata))
        }
        _ = try b.readTaggedFields { _, _ in false }
        return ClassicMemberMetadata(sessionTimeoutMs: sessionTimeoutMs, protocols: protocols)
    }

    /// A `[]TopicPartitions` field (topic id, partitions), as compact arrays.
    private static func write(_ assignment: PartitionAssignment, into buffer: inout ByteBuffer, topicId: (String) -> KafkaUUID?) {
        let known = assignment.keys.sorted().compactMap { name in topicId(name).map { ($0, assignment[name]!.sorted()) } }
        buffer.writeKafkaArrayCount(known.count, compact: true)
        for (id, partitions) in known {
            buffer.writeKafkaUUID(id)
            buffer.writeKafkaArrayCount(partitions.count, compact: true)
            for p in partitions { buffer.writeInteger(p) }
            buffer.writeEmptyTaggedFields()
        }
    }

    private static func readAssignment(_ buffer: inout ByteBuffer, topicName: (KafkaUUID) -> String?) throws -> PartitionAssignment {
        var result: PartitionAssignment = [:]
        for _ in 0..<(try buffer.readKafkaArrayCount(compact: true) ?? 0) {
            let id = try buffer.readKafkaUUID()
            var partitions: Set<Int32> = []
            for _ in 0..<(try buffer.readKafkaArrayCount(compact: true) ?? 0) { partitions.insert(try buffer.readKafkaInt()) }
            _ = try buffer.readTaggedFields { _, _ in false }
            if let name = topicName(id) { result[name] = partitions }
        }
        return result
    }

    /// The group and change a stored record holds; nil if its key is not a consumer-group record.
    static func decode(_ record: Record, topicName: (KafkaUUID) -> String?) throws -> (group: String, ModernGroupRecord)? {
        guard let keyBytes = record.key else { return nil }
        var key = ByteBuffer(bytes: keyBytes)
        let version: Int16 = try key.readKafkaInt()
        guard keyVersions.contains(version) else { return nil }
        let group = try key.readKafkaString(compact: false)
        let memberId = version == 5 || version == 7 || version == 8 ? try key.readKafkaString(compact: false) : ""
        guard let valueBytes = record.value else {
            switch version {
            case 3: return (group, .groupEpoch(nil))
            case 4: return (group, .subscriptionMetadata(nil))
            case 5: return (group, .member(memberId, nil))
            case 6: return (group, .targetEpoch(nil))
            case 7: return (group, .targetMember(memberId, nil))
            default: return (group, .currentAssignment(memberId, nil))
            }
        }
        var v = ByteBuffer(bytes: valueBytes)
        let valueVersion: Int16 = try v.readKafkaInt()
        guard valueVersion == 0 else { throw KafkaProtocolError.invalid("consumer group record key v\(version) value v\(valueVersion)") }
        switch version {
        case 3:
            return (group, .groupEpoch(try v.readKafkaInt()))
        case 4:
            var counts: [String: Int32] = [:]
            for _ in 0..<(try v.readKafkaArrayCount(compact: true) ?? 0) {
                let id = try v.readKafkaUUID()
                let name = try v.readKafkaString(compact: true)
                let count: Int32 = try v.readKafkaInt()
                for _ in 0..<(try v.readKafkaArrayCount(compact: true) ?? 0) {
                    let _: Int32 = try v.readKafkaInt()
                    for _ in 0..<(try v.readKafkaArrayCount(compact: true) ?? 0) { _ = try v.readKafkaString(compact: true) }
                    _ = try v.readTaggedFields { _, _ in false }
                }
                _ = try v.readTaggedFields { _, _ in false }
                if topicName(id) == name { counts[name] = count }
            }
            return (group, .subscriptionMetadata(counts))
        case 5:
            var m = ModernGroupMember(memberId: memberId, lastHeartbeatMs: 0)
            m.instanceId = try v.readKafkaNullableString(compact: true)
            m.rackId = try v.readKafkaNullableString(compact: true)
            m.clientId = try v.readKafkaString(compact: true)
            m.clientHost = try v.readKafkaString(compact: true)
            var names: [String] = []
            for _ in 0..<(try v.readKafkaArrayCount(compact: true) ?? 0) { names.append(try v.readKafkaString(compact: true)) }
            m.subscribedTopicNames = names
            m.subscribedTopicRegex = try v.readKafkaNullableString(compact: true)
            m.rebalanceTimeoutMs = try v.readKafkaInt()
            m.serverAssignor = try v.readKafkaNullableString(compact: true)
            _ = try v.readTaggedFields { tag, field in
                guard tag == 0 else { return false }
                m.classic = try decodeClassic(&field)
                return true
            }
            return (group, .member(memberId, m))
        case 6:
            return (group, .targetEpoch(try v.readKafkaInt()))
        case 7:
            return (group, .targetMember(memberId, try readAssignment(&v, topicName: topicName)))
        default:
            var m = ModernGroupMember(memberId: memberId, lastHeartbeatMs: 0)
            m.memberEpoch = try v.readKafkaInt()
            m.previousMemberEpoch = try v.readKafkaInt()
            let state: Int8 = try v.readKafkaInt()
            // Kafka's UNKNOWN (a state from a newer coordinator) restarts reconciliation from scratch.
            m.state = ModernGroupMember.State(rawValue: state) ?? .unreleasedPartitions
            m.assigned = try readAssignment(&v, topicName: topicName)
            m.pendingRevocation = try readAssignment(&v, topicName: topicName)
            return (group, .currentAssignment(memberId, m))
        }
    }
}
