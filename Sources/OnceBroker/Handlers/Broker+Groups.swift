import KafkaProtocol
import NIOCore
import OnceCore

/// The group coordinator's APIs: FindCoordinator, the classic rebalance protocol (JoinGroup,
/// SyncGroup, Heartbeat, LeaveGroup), committed offsets and group administration. Each maps the
/// request onto `GroupCoordinator` and back; the rules live in `ConsumerGroup`.
extension Broker {
    // MARK: FindCoordinator

    func findCoordinator(_ req: FindCoordinatorRequest, _ request: Request) -> FindCoordinatorResponse {
        var response = FindCoordinatorResponse()
        let known = req.keyType == 0 || req.keyType == 1
        let auth = authorization(request)
        let members = liveMembers(for: request)
        // Finding a coordinator needs DESCRIBE on the group or transactional id it coordinates.
        // The coordinator is the leader of the internal partition that holds the key's state; while
        // it has none, or the client cannot reach it, the client is told to retry, as Kafka does.
        func answer(for key: String) -> (ErrorCode, ClusterMember?, HostPort?) {
            guard known else { return (.invalidRequest, nil, nil) }
            if req.keyType == 0 {
                guard auth.allowsGroup(.describe, key) else { return (.groupAuthorizationFailed, nil, nil) }
            } else {
                guard auth.allowsTransactionalId(.describe, key) else { return (.transactionalIdAuthorizationFailed, nil, nil) }
            }
            let topic = req.keyType == 0 ? InternalTopics.consumerOffsets : InternalTopics.transactionState
            let partitions = storage.topic(named: topic)?.partitionCount ?? 1
            guard let leader = cluster.leader(of: CoordinatorPartition.of(key: key, topic: topic, partitions: partitions)),
                let (member, address) = members.first(where: { $0.0.nodeId == leader.nodeId })
            else { return (.coordinatorNotAvailable, nil, nil) }
            return (.none, member, address)
        }
        func message(_ error: ErrorCode) -> String? {
            error == .none ? nil : known ? error.name : "unknown key type \(req.keyType)"
        }
        if request.version >= 4 {
            response.coordinators = req.coordinatorKeys.map { key in
                var c = FindCoordinatorResponse.Coordinator()
                let (error, member, address) = answer(for: key)
                c.key = key
                c.errorCode = error.rawValue
                c.errorMessage = message(error)
                c.nodeId = member?.nodeId ?? -1
                c.host = address?.host ?? ""
                c.port = address.map { Int32($0.port) } ?? -1
                return c
            }
            return response
        }
        let (error, member, address) = answer(for: req.key)
        response.errorCode = error.rawValue
        response.errorMessage = message(error)
        response.nodeId = member?.nodeId ?? -1
        response.host = address?.host ?? ""
        response.port = address.map { Int32($0.port) } ?? -1
        return response
    }

    // MARK: Membership

    func joinGroup(_ req: JoinGroupRequest, _ request: Request) -> EventLoopFuture<JoinGroupResponse> {
        let version = request.version
        @Sendable func response(_ result: JoinGroupResult) -> JoinGroupResponse {
            var r = JoinGroupResponse()
            r.errorCode = result.error?.rawValue ?? 0
            r.generationId = result.error == nil ? result.generationId : -1
            r.protocolType = result.protocolType
            r.protocolName = result.protocolName ?? (version >= 7 ? nil : "")
            r.leader = result.leaderId
            r.memberId = result.memberId
            r.members = result.members.map {
                var m = JoinGroupResponse.JoinGroupResponseMember()
                m.memberId = $0.memberId
                m.groupInstanceId = $0.groupInstanceId
                m.metadata = $0.metadata
                return m
            }
            return r
        }
        let joinRefusal: ErrorCode? =
            !authorization(request).allowsGroup(.read, req.groupId) ? .groupAuthorizationFailed
            : req.groupId.isEmpty ? nil : groupCoordinatorRefusal(req.groupId)
        if let joinRefusal {
            var refused = JoinGroupResponse()
            refused.errorCode = joinRefusal.rawValue
            refused.generationId = -1
            refused.memberId = req.memberId
            refused.protocolName = version >= 7 ? nil : ""
            return request.eventLoop.makeSucceededFuture(refused)
        }
        guard !req.groupId.isEmpty else {
            return request.eventLoop.makeSucceededFuture(
                response(JoinGroupResult(error: .invalidGroupId, memberId: req.memberId)))
        }
        let clientId = request.header.clientId ?? ""
        let join = ConsumerGroup.JoinRequest(
            memberId: req.memberId,
            groupInstanceId: version >= 5 ? req.groupInstanceId : nil,
            clientId: clientId,
            clientHost: "",
            sessionTimeoutMs: req.sessionTimeoutMs,
            // v0 has no rebalance timeout; Kafka used the session timeout for both.
            rebalanceTimeoutMs: version >= 1 ? req.rebalanceTimeoutMs : req.sessionTimeoutMs,
            protocolType: req.protocolType,
            protocols: req.protocols.map { GroupProtocol(name: $0.name, metadata: $0.metadata) },
            requireKnownMemberId: version >= 4,
            newMemberId: "\(clientId)-\(randomUUIDString())")
        return groups.join(groupId: req.groupId, join, on: request.eventLoop).map { response($0) }
    }

    func syncGroup(_ req: SyncGroupRequest, _ request: Request) -> EventLoopFuture<SyncGroupResponse> {
        let version = request.version
        let syncRefusal: ErrorCode? =
            authorization(request).allowsGroup(.read, req.groupId) ? groupCoordinatorRefusal(req.groupId) : .groupAuthorizationFailed
        if let syncRefusal {
            var refused = SyncGroupResponse()
            refused.errorCode = syncRefusal.rawValue
            return request.eventLoop.makeSucceededFuture(refused)
        }
        var assignments: [String: [UInt8]] = [:]
        for a in req.assignments { assignments[a.memberId] = a.assignment }
        return groups.sync(
            groupId: req.groupId, memberId: req.memberId, groupInstanceId: version >= 3 ? req.groupInstanceId : nil,
            generationId: req.generationId, protocolType: version >= 5 ? req.protocolType : nil,
            protocolName: version >= 5 ? req.protocolName : nil, assignments: assignments, on: request.eventLoop
        ).map { result in
            var r = SyncGroupResponse()
            r.errorCode = result.error?.rawValue ?? 0
            r.protocolType = result.protocolType
            r.protocolName = result.protocolName
            r.assignment = result.assignment
            return r
        }
    }

    func heartbeat(_ req: HeartbeatRequest, _ request: Request) -> HeartbeatResponse {
        var r = HeartbeatResponse()
        guard authorization(request).allowsGroup(.read, req.groupId) else {
            r.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
            return r
        }
        if let refusal = groupCoordinatorRefusal(req.groupId) {
            r.errorCode = refusal.rawValue
            return r
        }
        r.errorCode =
            groups.heartbeat(
                groupId: req.groupId, memberId: req.memberId,
                groupInstanceId: request.version >= 3 ? req.groupInstanceId : nil, generationId: req.generationId
            )?.rawValue ?? 0
        return r
    }

    func leaveGroup(_ req: LeaveGroupRequest, _ request: Request) -> LeaveGroupResponse {
        let leaveRefusal: ErrorCode? =
            authorization(request).allowsGroup(.read, req.groupId) ? groupCoordinatorRefusal(req.groupId) : .groupAuthorizationFailed
        if let leaveRefusal {
            var refused = LeaveGroupResponse()
            refused.errorCode = leaveRefusal.rawValue
            return refused
        }
        let leaving: [ConsumerGroup.Leaving] =
            request.version >= 3
            ? req.members.map { ConsumerGroup.Leaving(memberId: $0.memberId, groupInstanceId: $0.groupInstanceId) }
            : [ConsumerGroup.Leaving(memberId: req.memberId)]
        let results = groups.leave(groupId: req.groupId, leaving)
        var r = LeaveGroupResponse()
        if request.version >= 3 {
            r.members = zip(leaving, results).map { who, error in
                var m = LeaveGroupResponse.MemberResponse()
                m.memberId = who.memberId
                m.groupInstanceId = who.groupInstanceId
                m.errorCode = error?.rawValue ?? 0
                return m
            }
        } else {
            r.errorCode = results.first??.rawValue ?? 0
        }
        return r
    }

    // MARK: Offsets

    func offsetCommit(_ req: OffsetCommitRequest, _ request: Request) -> OffsetCommitResponse {
        let now = clock()
        let auth = authorization(request)
        // Group READ for the commit, Topic READ for each topic in it; what is refused is not committed.
        let groupAllowed = auth.allowsGroup(.read, req.groupId)
        let refusedTopics = Set(req.topics.map(\.name).filter { !auth.allowsTopic(.read, $0) })
        var offsets: [GroupPartition: CommittedOffset] = [:]
        for t in req.topics where !refusedTopics.contains(t.name) {
            for p in t.partitions {
                offsets[GroupPartition(t.name, p.partitionIndex)] = CommittedOffset(
                    offset: p.committedOffset, leaderEpoch: request.version >= 6 ? p.committedLeaderEpoch : -1,
                    metadata: p.committedMetadata, commitTimestampMs: now)
            }
        }
        let notCoordinator = groupCoordinatorRefusal(req.groupId)
        let outcome: Result<[GroupPartition: GroupError?], ErrorCode> =
            !groupAllowed ? .failure(.groupAuthorizationFailed)
            : req.groupId.isEmpty
            ? .failure(.invalidGroupId)
            : offsets.isEmpty && !refusedTopics.isEmpty ? .success([:])
            : notCoordinator.map { .failure($0) } ?? groups.commit(
                groupId: req.groupId, memberId: req.memberId,
                groupInstanceId: request.version >= 7 ? req.groupInstanceId : nil,
                generationId: req.generationIdOrMemberEpoch, offsets: offsets, memberEpochAware: request.version >= 9
            ).mapError(\.errorCode)
        var r = OffsetCommitResponse()
        r.topics = req.topics.map { t in
            var topic = OffsetCommitResponse.OffsetCommitResponseTopic()
            topic.name = t.name
            topic.partitions = t.partitions.map { p in
                var partition = OffsetCommitResponse.OffsetCommitResponsePartition()
                partition.partitionIndex = p.partitionIndex
                partition.errorCode =
                    groupAllowed && refusedTopics.contains(t.name)
                    ? ErrorCode.topicAuthorizationFailed.rawValue
                    : Self.commitErrorCode(outcome, GroupPartition(t.name, p.partitionIndex))
                return partition
            }
            return topic
        }
        return r
    }

    /// One partition's answer to a commit (OffsetCommit or TxnOffsetCommit): the request-level
    /// failure if there is one, else the partition's own outcome.
    static func commitErrorCode(_ outcome: Result<[GroupPartition: GroupError?], ErrorCode>, _ partition: GroupPartition) -> Int16 {
        switch outcome {
        case .failure(let code): code.rawValue
        case .success(let results): results[partition]??.rawValue ?? 0
        }
    }

    func offsetFetch(_ req: OffsetFetchRequest, _ request: Request) -> OffsetFetchResponse {
        var r = OffsetFetchResponse()
        let auth = authorization(request)
        if request.version >= 8 {
            r.groups = req.groups.map { g in
                var group = OffsetFetchResponse.OffsetFetchResponseGroup()
                group.groupId = g.groupId
                guard auth.allowsGroup(.describe, g.groupId) else {
                    group.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
                    return group
                }
                if let refusal = groupCoordinatorRefusal(g.groupId) {
                    group.errorCode = refusal.rawValue
                    return group
                }
                if request.version >= 9,
                    let error = groups.validateOffsetFetch(groupId: g.groupId, memberId: g.memberId, memberEpoch: g.memberEpoch)
                {
                    group.errorCode = error.rawValue
                    return group
                }
                let asked = g.topics.map { $0.map { ($0.name, $0.partitionIndexes) } }
                group.topics = offsetRows(g.groupId, asked, requireStable: req.requireStable, auth).map { name, rows in
                    var topic = OffsetFetchResponse.OffsetFetchResponseTopics()
                    topic.name = name
                    topic.partitions = rows.map { row in
                        var p = OffsetFetchResponse.OffsetFetchResponsePartitions()
                        p.partitionIndex = row.partition
                        p.errorCode = row.errorCode.rawValue
                        p.committedOffset = row.committed?.offset ?? -1
                        p.committedLeaderEpoch = row.committed?.leaderEpoch ?? -1
                        p.metadata = row.committed?.metadata ?? ""
                        return p
                    }
                    return topic
                }
                return group
            }
            return r
        }
        // v1 names its topics; from v2 null topics means every committed offset of the group.
        let asked = req.topics.map { $0.map { ($0.name, $0.partitionIndexes) } }
        let fetchRefusal: ErrorCode? =
            auth.allowsGroup(.describe, req.groupId) ? groupCoordinatorRefusal(req.groupId) : .groupAuthorizationFailed
        if let fetchRefusal {
            // v1 has no top-level error: each asked partition carries it.
            if request.version >= 2 { r.errorCode = fetchRefusal.rawValue }
            r.topics = (asked ?? []).map { name, indexes in
                var topic = OffsetFetchResponse.OffsetFetchResponseTopic()
                topic.name = name
                topic.partitions = indexes.map { index in
                    var p = OffsetFetchResponse.OffsetFetchResponsePartition()
                    p.partitionIndex = index
                    p.errorCode = fetchRefusal.rawValue
                    p.committedOffset = -1
                    return p
                }
                return topic
            }
            return r
        }
        r.topics = offsetRows(req.groupId, asked, requireStable: request.version >= 7 && req.requireStable, auth).map { name, rows in
            var topic = OffsetFetchResponse.OffsetFetchResponseTopic()
            topic.name = name
            topic.partitions = rows.map { row in
                var p = OffsetFetchResponse.OffsetFetchResponsePartition()
                p.partitionIndex = row.partition
                p.errorCode = row.errorCode.rawValue
                p.committedOffset = row.committed?.offset ?? -1
                p.committedLeaderEpoch = row.committed?.leaderEpoch ?? -1
                p.metadata = row.committed?.metadata ?? ""
                return p
            }
            return topic
        }
        return r
    }

    /// One partition of an OffsetFetch answer, whichever version's types carry it.
    private struct OffsetRow {
        var partition: Int32
        /// Nil when nothing is committed.
        var committed: CommittedOffset?
        var errorCode: ErrorCode
    }

    /// The asked partitions (or every committed one) with their offsets. With `requireStable` (a
    /// read_committed consumer, v7+), partitions whose transactional offsets are undecided answer
    /// UNSTABLE_OFFSET_COMMIT so the consumer retries.
    /// Asked topics the principal may not DESCRIBE answer TOPIC_AUTHORIZATION_FAILED; when every
    /// topic is asked for, they are left out, as Kafka hides them.
    private func offsetRows(
        _ groupId: String, _ asked: [(String, [Int32])]?, requireStable: Bool, _ auth: RequestAuthorization
    ) -> [(String, [OffsetRow])] {
        let partitions = asked.map { $0.flatMap { name, indexes in indexes.map { GroupPartition(name, $0) } } }
        let committed = groups.committedOffsets(groupId: groupId, partitions: partitions)
        let unstable = requireStable ? groups.unstablePartitions(groupId: groupId) : []
        func row(_ partition: GroupPartition) -> OffsetRow {
            OffsetRow(
                partition: partition.partition, committed: committed[partition],
                errorCode: unstable.contains(partition) ? .unstableOffsetCommit : .none)
        }
        if let asked {
            return asked.map { name, indexes in
                guard auth.allowsTopic(.describe, name) else {
                    return (name, indexes.map { OffsetRow(partition: $0, committed: nil, errorCode: .topicAuthorizationFailed) })
                }
                return (name, indexes.map { row(GroupPartition(name, $0)) })
            }
        }
        let byTopic = Dictionary(grouping: committed.keys.sorted(), by: \.topic)
        return byTopic.keys.sorted().filter { auth.allowsTopic(.describe, $0) }.map { name in (name, byTopic[name]!.map(row)) }
    }

    func offsetDelete(_ req: OffsetDeleteRequest, _ request: Request) -> OffsetDeleteResponse {
        let auth = authorization(request)
        var r = OffsetDeleteResponse()
        guard auth.allowsGroup(.delete, req.groupId) else {
            r.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
            return r
        }
        if let refusal = groupCoordinatorRefusal(req.groupId) {
            r.errorCode = refusal.rawValue
            return r
        }
        let refusedTopics = Set(req.topics.map(\.name).filter { !auth.allowsTopic(.read, $0) })
        let partitions = req.topics.filter { !refusedTopics.contains($0.name) }
            .flatMap { t in t.partitions.map { GroupPartition(t.name, $0.partitionIndex) } }
        let outcome = groups.deleteOffsets(groupId: req.groupId, partitions: partitions) { Self.subscribedTopics(of: $0) }
        switch outcome {
        case .failure(let error):
            r.errorCode = error.rawValue
        case .success(let results):
            r.topics = req.topics.map { t in
                var topic = OffsetDeleteResponse.OffsetDeleteResponseTopic()
                topic.name = t.name
                topic.partitions = t.partitions.map { p in
                    var partition = OffsetDeleteResponse.OffsetDeleteResponsePartition()
                    partition.partitionIndex = p.partitionIndex
                    partition.errorCode =
                        refusedTopics.contains(t.name)
                        ? ErrorCode.topicAuthorizationFailed.rawValue
                        : results[GroupPartition(t.name, p.partitionIndex)]??.rawValue ?? 0
                    return partition
                }
                return topic
            }
        }
        return r
    }

    /// Topics a consumer-protocol group's members subscribe to, read from their subscriptions.
    static func subscribedTopics(of group: ConsumerGroup) -> Set<String> {
        guard group.protocolType == "consumer" else { return [] }
        var topics: Set<String> = []
        for member in group.orderedMembers {
            var bytes = ByteBuffer(bytes: member.metadata(for: group.protocolName))
            guard let version: Int16 = try? bytes.readKafkaInt(),
                let subscription = try? ConsumerProtocolSubscription(from: &bytes, version: min(version, 3))
            else { continue }
            topics.formUnion(subscription.topics)
        }
        return topics
    }

    // MARK: Administration

    func listGroups(_ req: ListGroupsRequest, _ request: Request) -> ListGroupsResponse {
        let states = Set(req.statesFilter.map { $0.lowercased() })
        let types = Set(req.typesFilter.map { $0.lowercased() })
        var r = ListGroupsResponse()
        // Cluster DESCRIBE lists every group; otherwise only the groups the principal may DESCRIBE.
        let auth = authorization(request)
        let everyGroup = auth.allowsCluster(.describe)
        let modern = groups.modernGroups()
        let modernIds = Set(modern.map(\.groupId))
        func listed(_ id: String, protocolType: String, state: String, type: String) -> ListGroupsResponse.ListedGroup? {
            // Each broker lists the groups it coordinates; the admin client asks every broker.
            guard coordinatesGroup(id), everyGroup || auth.allowsGroup(.describe, id) else { return nil }
            guard states.isEmpty || states.contains(state.lowercased()) else { return nil }
            guard types.isEmpty || types.contains(type) else { return nil }
            var listed = ListGroupsResponse.ListedGroup()
            listed.groupId = id
            listed.protocolType = protocolType
            listed.groupState = state
            listed.groupType = type
            return listed
        }
        // A consumer group's offsets live in a classic entry; the group is listed once, as consumer.
        let classic = groups.groups().filter { !modernIds.contains($0.groupId) }.compactMap {
            listed($0.groupId, protocolType: $0.protocolType ?? "", state: $0.state.rawValue, type: "classic")
        }
        let consumer = modern.compactMap {
            listed($0.groupId, protocolType: "consumer", state: $0.state.rawValue, type: "consumer")
        }
        r.groups = (classic + consumer).sorted { $0.groupId < $1.groupId }
        return r
    }

    func describeGroups(_ req: DescribeGroupsRequest, _ request: Request) -> DescribeGroupsResponse {
        var r = DescribeGroupsResponse()
        let auth = authorization(request)
        r.groups = req.groups.map { id in
            var described = DescribeGroupsResponse.DescribedGroup()
            described.groupId = id
            guard auth.allowsGroup(.describe, id) else {
                described.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
                return described
            }
            if let refusal = groupCoordinatorRefusal(id) {
                described.errorCode = refusal.rawValue
                return described
            }
            if req.includeAuthorizedOperations { described.authorizedOperations = auth.groupOperations(id) }
            // As Kafka: DescribeGroups describes classic groups; a consumer group is described by
            // ConsumerGroupDescribe and reads as Dead here.
            guard groups.modernGroup(id) == nil, let group = groups.group(id) else {
                described.groupState = ConsumerGroup.State.dead.rawValue
                return described
            }
            described.groupState = group.state.rawValue
            described.protocolType = group.protocolType ?? ""
            // Kafka shows subscriptions and assignments only once they are settled.
            let settled = group.state == .stable
            described.protocolData = settled ? group.protocolName ?? "" : ""
            described.members = group.orderedMembers.map { m in
                var member = DescribeGroupsResponse.DescribedGroupMember()
                member.memberId = m.memberId
                member.groupInstanceId = m.groupInstanceId
                member.clientId = m.clientId
                member.clientHost = m.clientHost
                member.memberMetadata = settled ? m.metadata(for: group.protocolName) : []
                member.memberAssignment = settled ? m.assignment : []
                return member
            }
            return described
        }
        return r
    }

    func deleteGroups(_ req: DeleteGroupsRequest, _ request: Request) -> DeleteGroupsResponse {
        let auth = authorization(request)
        let allowed = req.groupsNames.filter { auth.allowsGroup(.delete, $0) }
        let coordinated = allowed.filter(coordinatesGroup)
        var outcomes: [String: ErrorCode?] = [:]
        // updateValue: a subscript assignment of nil would remove the entry, not record success.
        for id in allowed { outcomes.updateValue(groupCoordinatorRefusal(id), forKey: id) }
        for (id, error) in zip(coordinated, groups.delete(groupIds: coordinated)) { outcomes.updateValue(error?.errorCode, forKey: id) }
        var r = DeleteGroupsResponse()
        r.results = req.groupsNames.map { id in
            var result = DeleteGroupsResponse.DeletableGroupResult()
            result.groupId = id
            if let outcome = outcomes[id] {
                result.errorCode = outcome?.rawValue ?? 0
            } else {
                result.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
            }
            return result
        }
        return r
    }

    /// A random version-4 UUID in its usual text form, as Kafka's member ids carry.
    func randomUUIDString() -> String {
        var bytes = runtime.random.bytes(16)
        bytes[6] = bytes[6] & 0x0f | 0x40
        bytes[8] = bytes[8] & 0x3f | 0x80
        let hex = bytes.map { b in String(b, radix: 16).count == 1 ? "0" + String(b, radix: 16) : String(b, radix: 16) }
        return [0..<4, 4..<6, 6..<8, 8..<10, 10..<16].map { hex[$0].joined() }.joined(separator: "-")
    }
}

extension GroupError {
    var errorCode: ErrorCode { ErrorCode(rawValue) }
}
