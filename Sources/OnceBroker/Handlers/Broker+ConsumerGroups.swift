import KafkaProtocol
import NIOCore
import OnceCore

/// KIP-848's APIs: ConsumerGroupHeartbeat (membership, subscription and assignment in one request)
/// and ConsumerGroupDescribe. Topic ids on the wire become names for `ModernGroup` and back.
extension Broker {
    /// A heartbeat that changed the group is answered after `groupCoordinatorAppendLingerMs`, as
    /// Kafka answers after its coordinator's write linger; the change itself is applied at once.
    func consumerGroupHeartbeat(_ req: ConsumerGroupHeartbeatRequest, _ request: Request) -> EventLoopFuture<ConsumerGroupHeartbeatResponse> {
        let (response, wrote) = consumerGroupHeartbeatAnswer(req, request)
        let linger = config.groupCoordinatorAppendLingerMs
        guard wrote, linger > 0 else { return request.eventLoop.makeSucceededFuture(response) }
        return runtime.delayed(response, afterMs: Int64(linger), on: request.eventLoop)
    }

    private func consumerGroupHeartbeatAnswer(
        _ req: ConsumerGroupHeartbeatRequest, _ request: Request
    ) -> (response: ConsumerGroupHeartbeatResponse, wrote: Bool) {
        var r = ConsumerGroupHeartbeatResponse()
        guard !req.groupId.isEmpty else {
            r.errorCode = ErrorCode.invalidRequest.rawValue
            r.errorMessage = "GroupId can't be empty."
            return (r, false)
        }
        // As Kafka's handleConsumerGroupHeartbeat: membership needs Group READ.
        guard authorization(request).allowsGroup(.read, req.groupId) else {
            r.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
            return (r, false)
        }
        if let refusal = groupCoordinatorRefusal(req.groupId) {
            r.errorCode = refusal.rawValue
            return (r, false)
        }
        var names: [KafkaUUID: String] = [:]
        for topic in storage.topics() { names[topic.id] = topic.name }
        let owned: PartitionAssignment? = req.topicPartitions.map { topics in
            var owned: PartitionAssignment = [:]
            for t in topics {
                // A topic deleted since the member got it is simply no longer owned.
                guard let name = names[t.topicId] else { continue }
                owned[name, default: []].formUnion(t.partitions)
            }
            return owned
        }
        let clientId = request.header.clientId ?? ""
        let hb = ModernGroup.Heartbeat(
            memberId: req.memberId, memberEpoch: req.memberEpoch, instanceId: req.instanceId, rackId: req.rackId,
            rebalanceTimeoutMs: req.rebalanceTimeoutMs, subscribedTopicNames: req.subscribedTopicNames,
            subscribedTopicRegex: request.version >= 1 ? req.subscribedTopicRegex : nil,
            serverAssignor: req.serverAssignor, ownedPartitions: owned, clientId: clientId, clientHost: "",
            clientGeneratesMemberId: request.version >= 1, newMemberId: randomUUIDString())
        let (result, wrote) = groups.consumerHeartbeat(groupId: req.groupId, hb)
        r.errorCode = result.error?.rawValue ?? 0
        r.errorMessage = result.errorMessage
        guard result.error == nil else { return (r, wrote) }
        r.memberId = result.memberId
        r.memberEpoch = result.memberEpoch
        r.heartbeatIntervalMs = result.heartbeatIntervalMs
        if let assignment = result.assignment {
            var a = ConsumerGroupHeartbeatResponse.Assignment()
            a.topicPartitions = assignment.keys.sorted().compactMap { name in
                guard let id = storage.topic(named: name)?.id else { return nil }
                var tp = ConsumerGroupHeartbeatResponse.TopicPartitions()
                tp.topicId = id
                tp.partitions = assignment[name]!.sorted()
                return tp
            }
            r.assignment = a
        }
        return (r, wrote)
    }

    func consumerGroupDescribe(_ req: ConsumerGroupDescribeRequest, _ request: Request) -> ConsumerGroupDescribeResponse {
        func described(_ assignment: PartitionAssignment) -> ConsumerGroupDescribeResponse.Assignment {
            var a = ConsumerGroupDescribeResponse.Assignment()
            a.topicPartitions = assignment.keys.sorted().compactMap { name in
                guard let id = storage.topic(named: name)?.id else { return nil }
                var tp = ConsumerGroupDescribeResponse.TopicPartitions()
                tp.topicId = id
                tp.topicName = name
                tp.partitions = assignment[name]!.sorted()
                return tp
            }
            return a
        }
        var r = ConsumerGroupDescribeResponse()
        let auth = authorization(request)
        r.groups = req.groupIds.map { id in
            var g = ConsumerGroupDescribeResponse.DescribedGroup()
            g.groupId = id
            guard auth.allowsGroup(.describe, id) else {
                g.errorCode = ErrorCode.groupAuthorizationFailed.rawValue
                return g
            }
            if let refusal = groupCoordinatorRefusal(id) {
                g.errorCode = refusal.rawValue
                return g
            }
            guard let group = groups.modernGroup(id) else {
                g.errorCode = ErrorCode.groupIdNotFound.rawValue
                g.errorMessage =
                    groups.group(id).map { $0.protocolType == nil && $0.state == .empty } == false
                    ? "Group \(id) is not a consumer group." : "Group \(id) not found."
                g.groupState = ModernGroup.State.dead.rawValue
                return g
            }
            g.groupState = group.state.rawValue
            g.groupEpoch = group.groupEpoch
            g.assignmentEpoch = group.assignmentEpoch
            g.assignorName = group.assignorName ?? group.config.consumerAssignors.first?.rawValue ?? ""
            if req.includeAuthorizedOperations { g.authorizedOperations = auth.groupOperations(id) }
            g.members = group.orderedMembers.map { m in
                var member = ConsumerGroupDescribeResponse.Member()
                member.memberId = m.memberId
                member.instanceId = m.instanceId
                member.rackId = m.rackId
                member.memberEpoch = m.memberEpoch
                member.clientId = m.clientId
                member.clientHost = m.clientHost
                member.subscribedTopicNames = m.subscribedTopicNames
                member.subscribedTopicRegex = m.subscribedTopicRegex
                member.assignment = described(m.assigned)
                member.targetAssignment = described(group.targetAssignment[m.memberId] ?? [:])
                return member
            }
            return g
        }
        return r
    }
}
