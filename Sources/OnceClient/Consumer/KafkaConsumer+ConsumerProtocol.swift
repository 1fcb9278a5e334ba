import KafkaProtocol
import NIOCore

/// KIP-848 membership: one ConsumerGroupHeartbeat joins, keeps the session and carries the
/// assignment the coordinator computed. Partitions arrive and leave one heartbeat at a time
/// (cooperatively): the member reports what it owns, and a partition it gives up goes to another
/// member only after that report, so partitions it keeps are never paused.
extension KafkaConsumer {
    /// Joins with epoch 0 under a member id of its own (ConsumerGroupHeartbeat v1, KIP-1082).
    func joinWithHeartbeat(_ state: inout GroupMemberState, coordinator: KafkaConnection) async throws -> GroupJoinOutcome {
        if state.usesConsumerProtocol && state.generationId > 0 && !state.memberId.isEmpty {
            // A rejoin from a live epoch would be fenced: leave, and come back as a new member.
            await leaveWithHeartbeat(state)
            state.memberId = ""
        }
        if state.memberId.isEmpty { state.memberId = Self.newMemberId() }
        state.usesConsumerProtocol = true
        var request = ConsumerGroupHeartbeatRequest()
        request.groupId = state.groupId
        request.memberId = state.memberId
        request.memberEpoch = 0
        request.instanceId = configuration.groupInstanceId
        request.rebalanceTimeoutMs = configuration.rebalanceTimeout.milliseconds
        request.subscribedTopicNames = state.topics
        request.topicPartitions = []
        let response = try await coordinator.send(request)
        if let error = KafkaError(errorCode: response.errorCode) {
            throw KafkaError(error.code, message: response.errorMessage ?? "joining \(state.groupId)")
        }
        state.generationId = response.memberEpoch
        state.assigned = try await partitions(of: response.assignment) ?? []
        state.needsJoin = false
        return GroupJoinOutcome(
            state: state, coordinator: coordinator, heartbeatInterval: .milliseconds(Int64(max(response.heartbeatIntervalMs, 100))))
    }

    /// Heartbeats at the coordinator's interval, reporting the partitions owned, and applies the
    /// assignments that come back. An error ends the loop and makes the next poll rejoin.
    func startConsumerProtocolHeartbeats(coordinator: KafkaConnection, interval: Duration?) {
        groupTask?.cancel()
        let first = interval ?? configuration.heartbeatInterval
        groupTask = Task { [weak self] in
            var interval = first
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                guard !Task.isCancelled, let self, let beat = await self.heartbeatToSend() else { return }
                do {
                    let response = try await coordinator.send(beat.request)
                    if let error = KafkaError(errorCode: response.errorCode) {
                        await self.heartbeatFailed(error, generation: beat.request.memberEpoch)
                        return
                    }
                    interval = .milliseconds(Int64(max(response.heartbeatIntervalMs, 100)))
                    let assigned = try await self.partitions(of: response.assignment)
                    await self.heartbeatAnswered(epoch: response.memberEpoch, assigned: assigned, sentEpoch: beat.request.memberEpoch)
                } catch {
                    await self.heartbeatFailed(nil, generation: beat.request.memberEpoch)
                    return
                }
            }
        }
    }

    /// The next heartbeat: epoch and owned partitions as the member stands now; nil once the
    /// member rejoins or leaves.
    private func heartbeatToSend() async -> (request: ConsumerGroupHeartbeatRequest, owned: [TopicPartition])? {
        guard let state = group, state.usesConsumerProtocol, !state.needsJoin else { return nil }
        var request = ConsumerGroupHeartbeatRequest()
        request.groupId = state.groupId
        request.memberId = state.memberId
        request.memberEpoch = state.generationId
        request.instanceId = configuration.groupInstanceId
        guard let ids = try? await topicIds(state.assigned.map(\.topic)) else { return nil }
        request.topicPartitions = Dictionary(grouping: state.assigned, by: \.topic).sorted { $0.key < $1.key }.compactMap {
            guard let id = ids[$0.key] else { return nil }
            var t = ConsumerGroupHeartbeatRequest.TopicPartitions()
            t.topicId = id
            t.partitions = $0.value.map(\.partition).sorted()
            return t
        }
        return (request, state.assigned)
    }

    /// Takes the member's new epoch and, when the coordinator sent one, its new assignment:
    /// revoked partitions stop (their positions committed first under auto-commit), kept ones
    /// carry on where they were, new ones start at their committed offsets.
    private func heartbeatAnswered(epoch: Int32, assigned: [TopicPartition]?, sentEpoch: Int32) async {
        guard var state = group, state.usesConsumerProtocol, !state.needsJoin, state.generationId == sentEpoch else { return }
        state.generationId = epoch
        group = state
        guard let assigned, Set(assigned) != Set(state.assigned) else { return }
        let revoked = Set(state.assigned).subtracting(assigned).sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
        if !revoked.isEmpty {
            if configuration.enableAutoCommit {
                let offsets = consumedPositions().filter { revoked.contains($0.key) }
                try? await commit(offsets)
            }
            rebalanceContinuation.yield(.revoked(revoked))
        }
        guard group?.generationId == epoch else { return }
        group?.assigned = assigned
        setAssignment(assigned)
        logger.info("group \(state.groupId) epoch \(epoch): \(assigned)")
        rebalanceContinuation.yield(.assigned(assigned))
    }

    /// Leaves with epoch -1, or -2 for a static member, which keeps its partitions for its return.
    func leaveWithHeartbeat(_ state: GroupMemberState) async {
        guard let coordinator = try? await client.coordinator(for: state.groupId, type: .group, attempts: 1) else { return }
        var request = ConsumerGroupHeartbeatRequest()
        request.groupId = state.groupId
        request.memberId = state.memberId
        request.instanceId = configuration.groupInstanceId
        request.memberEpoch = configuration.groupInstanceId == nil ? -1 : -2
        _ = try? await coordinator.send(request)
        if group?.memberId == state.memberId {
            group?.memberId = ""
            group?.assigned = []
        }
    }

    /// Topic ids name topics in KIP-848's messages; names come from metadata.
    private func topicIds(_ topics: [String]) async throws -> [String: KafkaUUID] {
        guard !topics.isEmpty else { return [:] }
        let metadata = try await client.metadata(topics: Array(Set(topics)).sorted())
        var ids: [String: KafkaUUID] = [:]
        for t in metadata.topics where t.error == nil { ids[t.name] = t.topicId }
        return ids
    }

    /// The partitions an assignment names, by topic name; nil when the answer carried none.
    private func partitions(of assignment: ConsumerGroupHeartbeatResponse.Assignment?) async throws -> [TopicPartition]? {
        guard let assignment else { return nil }
        guard !assignment.topicPartitions.isEmpty else { return [] }
        let topics = group?.topics ?? []
        let ids = try await topicIds(topics)
        let names = Dictionary(ids.map { ($0.value, $0.key) }, uniquingKeysWith: { a, _ in a })
        return assignment.topicPartitions.flatMap { t in
            names[t.topicId].map { name in t.partitions.map { TopicPartition(name, $0) } } ?? []
        }.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }
    }

    /// A random member id in Kafka's form (a UUID's 22 base64url characters).
    static func newMemberId() -> String {
        let bytes = (0..<16).map { _ in UInt8.random(in: 0...255) }
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        var bits = 0
        var value = 0
        var out = ""
        for byte in bytes {
            value = value << 8 | Int(byte)
            bits += 8
            while bits >= 6 {
                bits -= 6
                out.append(alphabet[(value >> bits) & 63])
            }
        }
        if bits > 0 { out.append(alphabet[(value << (6 - bits)) & 63]) }
        return out
    }
}
