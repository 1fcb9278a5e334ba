import KafkaProtocol
import NIOCore

extension KafkaConsumer {
    /// Joins the configured group and reads the partitions it assigns, following rebalances.
    /// Throws `KafkaUsageError` without a group id or after `assign`.
    public func subscribe(_ topics: [String]) throws(KafkaUsageError) {
        guard let groupId = configuration.groupId else {
            throw KafkaUsageError(.subscribeWithoutGroupId, "subscribe needs ConsumerConfiguration.groupId")
        }
        guard positions.isEmpty || group != nil else {
            throw KafkaUsageError(.assignAndSubscribe, "subscribe after assign: a consumer does one or the other")
        }
        if group == nil {
            group = GroupMemberState(groupId: groupId, topics: topics.sorted())
        } else {
            group!.topics = topics.sorted()
            group!.needsJoin = true
        }
    }

    /// The member's identity, for a transactional producer's `sendOffsets` (KIP-447). Without
    /// a group subscription it names only the group.
    public var groupMetadata: ConsumerGroupMetadata {
        ConsumerGroupMetadata(
            groupId: configuration.groupId ?? "", generationId: group?.generationId ?? -1, memberId: group?.memberId ?? "",
            groupInstanceId: configuration.groupInstanceId)
    }

    /// Commits the next offset to read for each partition (the positions of records already
    /// returned when `offsets` is nil) and waits for the coordinator.
    public func commit(_ offsets: [TopicPartition: Int64]? = nil) async throws {
        guard let groupId = configuration.groupId else {
            throw KafkaClientError(.unsupportedFeature, "committing offsets needs ConsumerConfiguration.groupId")
        }
        let offsets = offsets ?? consumedPositions()
        guard !offsets.isEmpty else { return }
        let coordinator = try await client.coordinator(for: groupId, type: .group)
        var request = OffsetCommitRequest()
        request.groupId = groupId
        request.generationIdOrMemberEpoch = group?.generationId ?? -1
        request.memberId = group?.memberId ?? ""
        request.groupInstanceId = configuration.groupInstanceId
        request.topics = Dictionary(grouping: offsets, by: \.key.topic).sorted { $0.key < $1.key }.map { topic, entries in
            var t = OffsetCommitRequest.OffsetCommitRequestTopic()
            t.name = topic
            t.partitions = entries.sorted { $0.key.partition < $1.key.partition }.map {
                var p = OffsetCommitRequest.OffsetCommitRequestPartition()
                p.partitionIndex = $0.key.partition
                p.committedOffset = $0.value
                return p
            }
            return t
        }
        let response = try await coordinator.send(request)
        for topic in response.topics {
            for partition in topic.partitions {
                if let error = KafkaError(errorCode: partition.errorCode) {
                    if [.rebalanceInProgress, .illegalGeneration, .unknownMemberId].contains(error.code) {
                        group?.needsJoin = true
                    }
                    throw KafkaError(error.code, message: "committing \(topic.name)-\(partition.partitionIndex)")
                }
            }
        }
    }

    /// Starts a commit and returns; failures are logged.
    public func commitAsync(_ offsets: [TopicPartition: Int64]? = nil) {
        let offsets = offsets ?? consumedPositions()
        Task {
            do {
                try await self.commit(offsets)
            } catch {
                self.logger.warning("async commit failed", metadata: ["error": "\(error)"])
            }
        }
    }

    func consumedPositions() -> [TopicPartition: Int64] {
        var result: [TopicPartition: Int64] = [:]
        for tp in positions.keys {
            if let position = position(tp) { result[tp] = position }
        }
        return result
    }

    func fetchCommittedOffsets(groupId: String, partitions: [TopicPartition]) async throws -> [TopicPartition: Int64] {
        let coordinator = try await client.coordinator(for: groupId, type: .group)
        let version = try coordinator.version(for: OffsetFetchRequest.self)
        var request = OffsetFetchRequest()
        var found: [TopicPartition: Int64] = [:]
        let byTopic = Dictionary(grouping: partitions, by: \.topic).sorted { $0.key < $1.key }
        if version >= 8 {
            var g = OffsetFetchRequest.OffsetFetchRequestGroup()
            g.groupId = groupId
            g.topics = byTopic.map { topic, parts in
                var t = OffsetFetchRequest.OffsetFetchRequestTopics()
                t.name = topic
                t.partitionIndexes = parts.map(\.partition).sorted()
                return t
            }
            request.groups = [g]
            request.requireStable = true
            let response = try await coordinator.send(request, version: version)
            for g in response.groups {
                if let error = KafkaError(errorCode: g.errorCode) { throw error }
                for t in g.topics {
                    for p in t.partitions where p.committedOffset >= 0 && p.errorCode == 0 {
                        found[TopicPartition(t.name, p.partitionIndex)] = p.committedOffset
                    }
                }
            }
        } else {
            request.groupId = groupId
            request.topics = byTopic.map { topic, parts in
                var t = OffsetFetchRequest.OffsetFetchRequestTopic()
                t.name = topic
                t.partitionIndexes = parts.map(\.partition).sorted()
                return t
            }
            let response = try await coordinator.send(request, version: version)
            if let error = KafkaError(errorCode: response.errorCode) { throw error }
            for t in response.topics {
                for p in t.partitions where p.committedOffset >= 0 && p.errorCode == 0 {
                    found[TopicPartition(t.name, p.partitionIndex)] = p.committedOffset
                }
            }
        }
        return found
    }

    // MARK: Membership

    /// Called before every batch: auto-commits on schedule, starts a rejoin when one is needed
    /// and applies it once it is done. True when the member holds a settled assignment (or
    /// there is no group); false while a rejoin runs. Throws only what retrying cannot cure.
    func groupTick() async throws -> Bool {
        guard let state = group else { return true }
        if configuration.enableAutoCommit, ContinuousClock.now - lastAutoCommit >= configuration.autoCommitInterval {
            lastAutoCommit = .now
            if !state.needsJoin { commitAsync() }
        }
        guard state.needsJoin else { return true }
        if let task = joinTask {
            guard joinDone else { return false }
            joinTask = nil
            let outcome = try await task.value
            applyJoin(outcome)
            return !(group?.needsJoin ?? true)
        }
        if !state.assigned.isEmpty {
            if configuration.enableAutoCommit { try? await commit() }
            rebalanceContinuation.yield(.revoked(state.assigned))
            // Stop fetching, but remember where each partition was in case it comes back.
            retainedPositions = RetainedPositions(
                memberId: state.memberId, generationId: state.generationId, positions: releaseAssignment())
            group?.assigned = []
        }
        startJoin()
        return false
    }

    private func startJoin() {
        guard let state = group else { return }
        joinDone = false
        joinTask = Task { [weak self] in
            guard let self else { throw CancellationError() }
            do {
                let outcome = try await self.rejoin(from: state)
                await self.joinFinished()
                return outcome
            } catch {
                await self.joinFinished()
                throw error
            }
        }
    }

    private func joinFinished() {
        joinDone = true
        wakeWaiters()
    }

    /// Joins and syncs until it works, recovering from group errors the way the Java client
    /// does (see `GroupErrorRecovery`); throws only the errors no retry cures.
    private func rejoin(from start: GroupMemberState) async throws -> GroupJoinOutcome {
        var state = start
        var attempts = 0
        while true {
            try Task.checkCancellation()
            do {
                return try await joinAndSync(&state)
            } catch {
                let recovery = GroupErrorRecovery(error)
                attempts += 1
                switch recovery {
                case .fail:
                    throw error
                case .rejoinAsNewMember:
                    state.memberId = ""
                case .rejoin, .rediscoverCoordinator, .retry:
                    break
                }
                logger.info("joining group \(state.groupId) failed, retrying", metadata: ["error": "\(error)", "attempt": "\(attempts)"])
                if recovery.backsOff { try await Task.sleep(for: GroupErrorRecovery.backoff(attempt: attempts)) }
            }
        }
    }

    /// Takes over the generation a rejoin reached: the new assignment, with the positions of
    /// partitions kept across the rebalance, and heartbeats for it.
    private func applyJoin(_ outcome: GroupJoinOutcome) {
        guard let current = group else { return }
        var state = outcome.state
        // The subscription changed while joining: the new generation is already stale.
        if current.topics != state.topics {
            state.topics = current.topics
            state.needsJoin = true
        }
        let keeping =
            retainedPositions?.positions(
                memberId: state.memberId, generationId: state.generationId, assigned: state.assigned) ?? [:]
        retainedPositions = nil
        group = state
        setAssignment(state.assigned, keeping: keeping)
        logger.info("joined group \(state.groupId) generation \(state.generationId): \(state.assigned)")
        rebalanceContinuation.yield(.assigned(state.assigned))
        if state.usesConsumerProtocol {
            startConsumerProtocolHeartbeats(coordinator: outcome.coordinator, interval: outcome.heartbeatInterval)
        } else {
            startHeartbeats(coordinator: outcome.coordinator)
        }
    }

    /// One JoinGroup and SyncGroup round. `state` learns the member id even when the round
    /// fails later, so a retry rejoins as the same member.
    private func joinAndSync(_ state: inout GroupMemberState) async throws -> GroupJoinOutcome {
        let coordinator = try await client.coordinator(for: state.groupId, type: .group)
        if configuration.preferConsumerGroupProtocol,
            let version = try? coordinator.version(for: ConsumerGroupHeartbeatRequest.self), version >= 1
        {
            return try await joinWithHeartbeat(&state, coordinator: coordinator)
        }
        state.usesConsumerProtocol = false
        var subscription = ConsumerProtocolSubscription()
        subscription.topics = state.topics
        let metadataBytes = Self.encodeVersioned(subscription, version: 0)

        var join = JoinGroupRequest()
        join.groupId = state.groupId
        join.sessionTimeoutMs = configuration.sessionTimeout.milliseconds
        join.rebalanceTimeoutMs = configuration.rebalanceTimeout.milliseconds
        join.memberId = state.memberId
        join.groupInstanceId = configuration.groupInstanceId
        join.protocolType = "consumer"
        join.protocols = configuration.assignors.map {
            var p = JoinGroupRequest.JoinGroupRequestProtocol()
            p.name = $0.rawValue
            p.metadata = metadataBytes
            return p
        }
        let joined = try await coordinator.send(join, brokerWait: configuration.rebalanceTimeout)
        if let error = KafkaError(errorCode: joined.errorCode) {
            guard error.code == .memberIdRequired else { throw error }
            state.memberId = joined.memberId
            return try await joinAndSync(&state)
        }
        state.memberId = joined.memberId
        state.generationId = joined.generationId
        state.protocolName = joined.protocolName

        var sync = SyncGroupRequest()
        sync.groupId = state.groupId
        sync.generationId = joined.generationId
        sync.memberId = joined.memberId
        sync.groupInstanceId = configuration.groupInstanceId
        sync.protocolType = "consumer"
        sync.protocolName = joined.protocolName
        if joined.leader == joined.memberId {
            sync.assignments = try await computeAssignments(joined)
        }
        let synced = try await coordinator.send(sync, brokerWait: configuration.rebalanceTimeout)
        if let error = KafkaError(errorCode: synced.errorCode) { throw error }
        state.assigned = KafkaClient.decodeAssignment(synced.assignment)
        state.needsJoin = false
        return GroupJoinOutcome(state: state, coordinator: coordinator)
    }

    private func computeAssignments(_ joined: JoinGroupResponse) async throws -> [SyncGroupRequest.SyncGroupRequestAssignment] {
        var subscriptions: [String: [String]] = [:]
        for member in joined.members {
            var buffer = ByteBuffer(bytes: member.metadata)
            let version: Int16 = (try? buffer.readKafkaInt()) ?? 0
            let subscription = try ConsumerProtocolSubscription(
                from: &buffer, version: min(version, ConsumerProtocolSubscription.validVersions.upperBound))
            subscriptions[member.memberId] = subscription.topics
        }
        let topics = Array(Set(subscriptions.values.flatMap { $0 }))
        let metadata = try await client.metadata(topics: topics)
        var counts: [String: Int32] = [:]
        for topic in metadata.topics where topic.error == nil { counts[topic.name] = Int32(topic.partitions.count) }
        let assignor = PartitionAssignor(rawValue: joined.protocolName ?? "") ?? .range
        let plan = assignor.assign(subscriptions: subscriptions, partitionCounts: counts)
        return plan.sorted { $0.key < $1.key }.map { member, partitions in
            var assignment = ConsumerProtocolAssignment()
            assignment.assignedPartitions = Dictionary(grouping: partitions, by: \.topic).sorted { $0.key < $1.key }.map {
                var t = ConsumerProtocolAssignment.TopicPartition()
                t.topic = $0.key
                t.partitions = $0.value.map(\.partition).sorted()
                return t
            }
            var entry = SyncGroupRequest.SyncGroupRequestAssignment()
            entry.memberId = member
            entry.assignment = Self.encodeVersioned(assignment, version: 0)
            return entry
        }
    }

    static func encodeVersioned<M: KafkaMessage>(_ message: M, version: Int16) -> [UInt8] {
        var buffer = ByteBuffer()
        buffer.writeInteger(version, endianness: .big)
        message.encode(into: &buffer, version: version)
        return Array(buffer.readableBytesView)
    }

    private func startHeartbeats(coordinator: KafkaConnection) {
        groupTask?.cancel()
        guard let state = group else { return }
        let interval = configuration.heartbeatInterval
        let instanceId = configuration.groupInstanceId
        groupTask = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: interval)
                if Task.isCancelled { return }
                var request = HeartbeatRequest()
                request.groupId = state.groupId
                request.generationId = state.generationId
                request.memberId = state.memberId
                request.groupInstanceId = instanceId
                do {
                    let response = try await coordinator.send(request)
                    if let error = KafkaError(errorCode: response.errorCode) {
                        await self?.heartbeatFailed(error, generation: state.generationId)
                        return
                    }
                } catch {
                    await self?.heartbeatFailed(nil, generation: state.generationId)
                    return
                }
            }
        }
    }

    func heartbeatFailed(_ error: KafkaError?, generation: Int32) {
        guard var state = group, state.generationId == generation else { return }
        if let error, [.unknownMemberId, .fencedInstanceId, .fencedMemberEpoch].contains(error.code) { state.memberId = "" }
        logger.debug("heartbeat: \(error.map(\.description) ?? "connection lost"); rejoining")
        state.needsJoin = true
        group = state
    }

    /// Leaves the group so the others rebalance at once instead of after the session timeout.
    func leaveGroup() async {
        groupTask?.cancel()
        groupTask = nil
        joinTask?.cancel()
        joinTask = nil
        guard let state = group, !state.memberId.isEmpty else { return }
        if configuration.enableAutoCommit, !state.needsJoin { try? await commit() }
        if !state.assigned.isEmpty { rebalanceContinuation.yield(.revoked(state.assigned)) }
        if state.usesConsumerProtocol {
            await leaveWithHeartbeat(state)
            return
        }
        guard configuration.groupInstanceId == nil,
            let coordinator = try? await client.coordinator(for: state.groupId, type: .group, attempts: 1)
        else { return }
        var request = LeaveGroupRequest()
        request.groupId = state.groupId
        request.memberId = state.memberId
        var member = LeaveGroupRequest.MemberIdentity()
        member.memberId = state.memberId
        request.members = [member]
        _ = try? await coordinator.send(request)
        group?.memberId = ""
        group?.assigned = []
    }
}

/// What a successful rejoin reached: the member's new generation and assignment, and the
/// coordinator to heartbeat.
struct GroupJoinOutcome: Sendable {
    var state: GroupMemberState
    var coordinator: KafkaConnection
    /// What the coordinator asked for (KIP-848); nil for the classic protocol's configured one.
    var heartbeatInterval: Duration? = nil
}
