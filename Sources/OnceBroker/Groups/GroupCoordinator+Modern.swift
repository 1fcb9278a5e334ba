import KafkaProtocol
import NIOCore
import OnceCore

/// The KIP-848 half of the coordinator: runs `ModernGroup` heartbeats against the topics as they
/// are now, converts an empty classic group on its first heartbeat, and writes the group's
/// records through `__consumer_offsets` before the answer leaves.
extension GroupCoordinator {
    /// `wrote` says the heartbeat changed the group, so its answer waits for the append linger.
    func consumerHeartbeat(groupId: String, _ hb: ModernGroup.Heartbeat) -> (result: ModernGroup.HeartbeatResult, wrote: Bool) {
        let now = clock()
        var topics: [String: Int32] = [:]
        for topic in storage.topics() { topics[topic.name] = topic.partitionCount }
        return state.withLockedValue { s -> (result: ModernGroup.HeartbeatResult, wrote: Bool) in
            var group: ModernGroup
            if let existing = s.modern[groupId] {
                group = existing
            } else {
                guard hb.memberEpoch == 0 else {
                    return (ModernGroup.HeartbeatResult(error: .groupIdNotFound, errorMessage: "Consumer group \(groupId) not found."), false)
                }
                if let classic = s.groups[groupId] {
                    // KIP-848's upgrade path: only an empty classic group becomes a consumer group.
                    guard classic.state == .empty else {
                        return (ModernGroup.HeartbeatResult(error: .groupIdNotFound, errorMessage: "Group \(groupId) is not a consumer group."), false)
                    }
                    if classic.protocolType != nil {
                        guard append([.group(groupId, nil)], now: now) != nil else {
                            return (ModernGroup.HeartbeatResult(error: .coordinatorNotAvailable), false)
                        }
                        var offsetsOnly = ConsumerGroup(groupId: groupId, config: config, now: now)
                        offsetsOnly.offsetsCommitted(classic.offsets)
                        s.groups[groupId] = offsetsOnly
                    }
                }
                group = ModernGroup(groupId: groupId, config: config, now: now)
            }
            let (result, records) = group.heartbeatReceived(hb, topics: topics, now: now)
            // Nothing written, nothing changed: the member retries against the old state.
            guard appendModern(groupId, records, now: now) else { return (ModernGroup.HeartbeatResult(error: .coordinatorNotAvailable), false) }
            // A rejected heartbeat changed nothing, and must not create a group.
            if result.error == nil { s.modern[groupId] = group }
            return (result, !records.isEmpty)
        }
    }

    /// OffsetFetch v9+: a KIP-848 member must name its current epoch.
    func validateOffsetFetch(groupId: String, memberId: String?, memberEpoch: Int32) -> GroupError? {
        state.withLockedValue { s in
            s.modern[groupId]?.offsetFetchReceived(memberId: memberId, memberEpoch: memberEpoch)
        }
    }

    /// Appends a group's records in one batch; false (logged) when storage refuses.
    @discardableResult
    func appendModern(_ groupId: String, _ records: [ModernGroupRecord], now: Int64) -> Bool {
        guard !records.isEmpty else { return true }
        let encoded = records.map { ModernGroupRecordCodec.record(group: groupId, $0, topicId: topicId) }
        do {
            _ = try offsetsLog().append(RecordBatch.encode(records: encoded, baseTimestamp: now))
            return true
        } catch {
            logger.error("writing __consumer_offsets failed", metadata: ["error": "\(error)"])
            return false
        }
    }

    func topicId(_ name: String) -> KafkaUUID? { storage.topic(named: name)?.id }
}
