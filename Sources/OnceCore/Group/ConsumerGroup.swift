/// One classic-protocol group: membership, generations and rebalances (JoinGroup/SyncGroup), and the
/// offsets it has committed. Pure: every event takes the time, and answers for parked requests come
/// back as `GroupAction`s for the driver to perform.
public struct ConsumerGroup: Sendable {
    /// Kafka's classic group states, spelled as DescribeGroups and ListGroups report them.
    public enum State: String, Sendable, Hashable, CaseIterable {
        case empty = "Empty"
        case preparingRebalance = "PreparingRebalance"
        case completingRebalance = "CompletingRebalance"
        case stable = "Stable"
        case dead = "Dead"
    }

    /// What the member sent in JoinGroup, with a member id the driver generated in case one is needed.
    public struct JoinRequest: Sendable, Hashable {
        public var memberId: String
        public var groupInstanceId: String?
        public var clientId: String
        public var clientHost: String
        public var sessionTimeoutMs: Int32
        public var rebalanceTimeoutMs: Int32
        public var protocolType: String
        public var protocols: [GroupProtocol]
        /// KIP-394: from JoinGroup v4 a new dynamic member first gets its id back with
        /// MEMBER_ID_REQUIRED and must join again with it.
        public var requireKnownMemberId: Bool
        /// The id a new member receives; injected so the machine stays deterministic.
        public var newMemberId: String

        public init(
            memberId: String, groupInstanceId: String? = nil, clientId: String, clientHost: String = "",
            sessionTimeoutMs: Int32, rebalanceTimeoutMs: Int32, protocolType: String, protocols: [GroupProtocol],
            requireKnownMemberId: Bool, newMemberId: String
        ) {
            self.memberId = memberId
            self.groupInstanceId = groupInstanceId
            self.clientId = clientId
            self.clientHost = clientHost
            self.sessionTimeoutMs = sessionTimeoutMs
            self.rebalanceTimeoutMs = rebalanceTimeoutMs
            self.protocolType = protocolType
            self.protocols = protocols
            self.requireKnownMemberId = requireKnownMemberId
            self.newMemberId = newMemberId
        }
    }

    public let groupId: String
    public let config: GroupConfig
    public private(set) var state: State = .empty
    public private(set) var stateTimestampMs: Int64
    public private(set) var generationId: Int32 = 0
    public private(set) var protocolType: String?
    public private(set) var protocolName: String?
    public private(set) var leaderId: String?
    public internal(set) var members: [String: GroupMember] = [:]
    /// Member ids in joining order, so responses and descriptions are deterministic.
    public private(set) var memberOrder: [String] = []
    /// KIP-394 ids handed out with MEMBER_ID_REQUIRED, with the time they lapse if never used.
    public internal(set) var pendingMembers: [String: Int64] = [:]
    /// KIP-345: group.instance.id -> current member id.
    public private(set) var staticMembers: [String: String] = [:]
    public internal(set) var offsets: [GroupPartition: CommittedOffset] = [:]
    /// PreparingRebalance ends by this time even if some members never rejoin.
    public private(set) var rebalanceDeadlineMs: Int64 = 0
    /// PreparingRebalance of a formerly empty group does not end before this time.
    public private(set) var joinNotBeforeMs: Int64 = 0

    public init(groupId: String, config: GroupConfig = GroupConfig(), now: Int64) {
        self.groupId = groupId
        self.config = config
        self.stateTimestampMs = now
    }

    /// Rebuilds a group from its last persisted metadata. Members come back alive with a fresh
    /// session, so clients that outlived a broker restart keep their generation; the ones that died
    /// with it time out as usual.
    public init(restoring snapshot: GroupSnapshot, config: GroupConfig = GroupConfig(), now: Int64) {
        self.init(groupId: snapshot.groupId, config: config, now: snapshot.stateTimestampMs)
        protocolType = snapshot.protocolType
        generationId = snapshot.generationId
        protocolName = snapshot.protocolName
        guard !snapshot.members.isEmpty else { return }
        for m in snapshot.members {
            var member = GroupMember(
                memberId: m.memberId, groupInstanceId: m.groupInstanceId, clientId: m.clientId,
                clientHost: m.clientHost, sessionTimeoutMs: m.sessionTimeoutMs, rebalanceTimeoutMs: m.rebalanceTimeoutMs,
                protocolType: snapshot.protocolType ?? "",
                protocols: [GroupProtocol(name: snapshot.protocolName ?? "", metadata: m.subscription)],
                lastHeartbeatMs: now)
            member.assignment = m.assignment
            members[m.memberId] = member
            memberOrder.append(m.memberId)
            if let instance = m.groupInstanceId { staticMembers[instance] = m.memberId }
        }
        leaderId = snapshot.leaderId.flatMap { members[$0] == nil ? nil : $0 } ?? memberOrder.first
        state = .stable
    }

    /// KIP-848's downgrade: the classic group a consumer group's remaining (classic) members form,
    /// at the consumer group's epoch, stable with the assignments they were given, as Kafka's
    /// `ClassicGroup.fromConsumerGroup`. `rebalance` then makes them rejoin as a classic group.
    public init(
        groupId: String, converting converted: [GroupMember], generationId: Int32, config: GroupConfig = GroupConfig(),
        now: Int64
    ) {
        self.init(groupId: groupId, config: config, now: now)
        self.generationId = generationId
        protocolType = converted.first?.protocolType
        for m in converted {
            members[m.memberId] = m
            memberOrder.append(m.memberId)
            if let instance = m.groupInstanceId { staticMembers[instance] = m.memberId }
        }
        protocolName = selectProtocol()
        leaderId = memberOrder.first
        state = converted.isEmpty ? .empty : .stable
    }

    /// Starts a rebalance of a group that is not rebalancing yet (a converted group), answering
    /// any parked SyncGroup with REBALANCE_IN_PROGRESS as every rebalance does.
    public mutating func rebalance(now: Int64) -> [GroupAction] {
        guard state == .stable || state == .completingRebalance else { return [] }
        return prepareRebalance(now: now)
    }

    /// KIP-848's upgrade: every parked JoinGroup and SyncGroup is told REBALANCE_IN_PROGRESS, so
    /// its member rejoins the consumer group the classic one became.
    public func parkedRequestsRejected() -> [GroupAction] {
        orderedMembers.flatMap { m -> [GroupAction] in
            (m.awaitingJoin.map { [GroupAction.completeJoin($0, JoinGroupResult(error: .rebalanceInProgress, memberId: m.memberId))] } ?? [])
                + (m.awaitingSync.map { [GroupAction.completeSync($0, SyncGroupResult(error: .rebalanceInProgress))] } ?? [])
        }
    }

    /// The group's metadata as it is written to the log.
    public var snapshot: GroupSnapshot {
        GroupSnapshot(
            groupId: groupId, protocolType: protocolType, generationId: generationId, protocolName: protocolName,
            leaderId: leaderId, stateTimestampMs: stateTimestampMs,
            members: memberOrder.compactMap { members[$0] }.map { m in
                GroupSnapshot.Member(
                    memberId: m.memberId, groupInstanceId: m.groupInstanceId, clientId: m.clientId,
                    clientHost: m.clientHost, rebalanceTimeoutMs: m.rebalanceTimeoutMs,
                    sessionTimeoutMs: m.sessionTimeoutMs, subscription: m.metadata(for: protocolName),
                    assignment: m.assignment)
            })
    }

    /// Members in joining order.
    public var orderedMembers: [GroupMember] { memberOrder.compactMap { members[$0] } }

    // MARK: JoinGroup

    public mutating func joinReceived(_ join: JoinRequest, token: RequestToken, now: Int64) -> [GroupAction] {
        func reject(_ error: GroupError, memberId: String = join.memberId) -> [GroupAction] {
            [.completeJoin(token, JoinGroupResult(error: error, memberId: memberId))]
        }
        if state == .dead { return reject(.coordinatorNotAvailable) }
        guard join.sessionTimeoutMs >= config.minSessionTimeoutMs, join.sessionTimeoutMs <= config.maxSessionTimeoutMs
        else { return reject(.invalidSessionTimeout) }
        guard !join.protocolType.isEmpty, !join.protocols.isEmpty, accepts(join, ignoring: join.memberId) else {
            return reject(.inconsistentGroupProtocol)
        }

        if join.memberId.isEmpty {
            if let instance = join.groupInstanceId, let existing = staticMembers[instance] {
                return replaceStaticMember(existing, with: join, token: token, now: now)
            }
            if join.groupInstanceId == nil && join.requireKnownMemberId {
                pendingMembers[join.newMemberId] = now + Int64(join.sessionTimeoutMs)
                return reject(.memberIdRequired, memberId: join.newMemberId)
            }
            return addMember(join, memberId: join.newMemberId, token: token, now: now)
        }

        if pendingMembers.removeValue(forKey: join.memberId) != nil {
            return addMember(join, memberId: join.memberId, token: token, now: now)
        }
        if let instance = join.groupInstanceId, let existing = staticMembers[instance], existing != join.memberId {
            return reject(.fencedInstanceId)
        }
        guard let member = members[join.memberId] else { return reject(.unknownMemberId) }

        switch state {
        case .empty, .dead:
            return reject(.unknownMemberId)
        case .preparingRebalance:
            var actions = update(member.memberId, from: join, token: token, now: now)
            actions += maybeCompleteJoin(now: now)
            return actions
        case .completingRebalance:
            if member.protocols == join.protocols {
                // The member missed its JoinGroup response (a retry): answer with the same generation.
                return [.completeJoin(token, joinResult(for: member.memberId))]
            }
            var actions = update(member.memberId, from: join, token: token, now: now)
            actions += prepareRebalance(now: now)
            return actions
        case .stable:
            if member.memberId != leaderId && member.protocols == join.protocols {
                var result = joinResult(for: member.memberId)
                result.members = []
                return [.completeJoin(token, result)]
            }
            var actions = update(member.memberId, from: join, token: token, now: now)
            actions += prepareRebalance(now: now)
            return actions
        }
    }

    /// Whether the joining member can share a protocol type and at least one protocol with the others.
    private func accepts(_ join: JoinRequest, ignoring memberId: String) -> Bool {
        let others = members.values.filter { $0.memberId != memberId }
        guard !others.isEmpty else { return true }
        guard protocolType == nil || protocolType == join.protocolType else { return false }
        var common = Set(join.protocols.map(\.name))
        for other in others { common.formIntersection(other.protocols.map(\.name)) }
        return !common.isEmpty
    }

    private mutating func addMember(_ join: JoinRequest, memberId: String, token: RequestToken, now: Int64) -> [GroupAction] {
        var member = GroupMember(
            memberId: memberId, groupInstanceId: join.groupInstanceId, clientId: join.clientId,
            clientHost: join.clientHost, sessionTimeoutMs: join.sessionTimeoutMs,
            rebalanceTimeoutMs: join.rebalanceTimeoutMs, protocolType: join.protocolType, protocols: join.protocols,
            lastHeartbeatMs: now)
        member.awaitingJoin = token
        if members.isEmpty { protocolType = join.protocolType }
        members[memberId] = member
        memberOrder.append(memberId)
        if let instance = join.groupInstanceId { staticMembers[instance] = memberId }
        if state == .preparingRebalance {
            // Consumers started together keep arriving during the initial delay; give them a moment more.
            if now < joinNotBeforeMs {
                joinNotBeforeMs = min(now + Int64(config.initialRebalanceDelayMs), rebalanceDeadlineMs)
            }
            return maybeCompleteJoin(now: now)
        }
        return prepareRebalance(now: now)
    }

    /// Takes the member's new protocols and timeouts and parks its JoinGroup until the rebalance ends.
    private mutating func update(_ memberId: String, from join: JoinRequest, token: RequestToken, now: Int64) -> [GroupAction] {
        guard var member = members[memberId] else { preconditionFailure("updating unknown member \(memberId)") }
        var actions: [GroupAction] = []
        if let previous = member.awaitingJoin {
            actions.append(.completeJoin(previous, JoinGroupResult(error: .rebalanceInProgress, memberId: memberId)))
        }
        member.protocols = join.protocols
        member.sessionTimeoutMs = join.sessionTimeoutMs
        member.rebalanceTimeoutMs = join.rebalanceTimeoutMs
        member.clientId = join.clientId
        member.clientHost = join.clientHost
        member.awaitingJoin = token
        member.lastHeartbeatMs = now
        members[memberId] = member
        return actions
    }

    /// KIP-345: a static member restarted and joined without its old member id. It takes over the old
    /// identity under a new id; the old incarnation is fenced.
    private mutating func replaceStaticMember(
        _ oldId: String, with join: JoinRequest, token: RequestToken, now: Int64
    ) -> [GroupAction] {
        guard var member = members.removeValue(forKey: oldId) else {
            preconditionFailure("static member \(oldId) is mapped but not a member")
        }
        var actions: [GroupAction] = []
        if let parked = member.awaitingJoin {
            actions.append(.completeJoin(parked, JoinGroupResult(error: .fencedInstanceId, memberId: oldId)))
        }
        if let parked = member.awaitingSync {
            actions.append(.completeSync(parked, SyncGroupResult(error: .fencedInstanceId)))
        }
        let newId = join.newMemberId
        let sameProtocols = member.metadata(for: protocolName) == join.protocols.first { $0.name == protocolName }?.metadata
        member.memberId = newId
        member.awaitingJoin = nil
        member.awaitingSync = nil
        members[newId] = member
        memberOrder = memberOrder.map { $0 == oldId ? newId : $0 }
        staticMembers[join.groupInstanceId!] = newId
        let wasLeader = leaderId == oldId
        if wasLeader { leaderId = newId }
        actions += update(newId, from: join, token: token, now: now)

        if state == .stable && sameProtocols && !wasLeader {
            // Nothing about the group changed: hand back the existing assignment without a rebalance.
            members[newId]!.awaitingJoin = nil
            var result = joinResult(for: newId)
            result.members = []
            actions.append(.completeJoin(token, result))
            actions.append(.persistGroup(snapshot))
            return actions
        }
        switch state {
        case .preparingRebalance:
            actions += maybeCompleteJoin(now: now)
        default:
            actions += prepareRebalance(now: now)
        }
        return actions
    }

    private mutating func prepareRebalance(now: Int64) -> [GroupAction] {
        var actions: [GroupAction] = []
        if state == .completingRebalance {
            for id in memberOrder {
                if let parked = members[id]?.awaitingSync {
                    actions.append(.completeSync(parked, SyncGroupResult(error: .rebalanceInProgress)))
                }
                members[id]?.awaitingSync = nil
            }
        }
        for id in memberOrder { members[id]?.assignment = [] }
        let wasEmpty = state == .empty
        transition(to: .preparingRebalance, now: now)
        let timeout = Int64(members.values.map(\.rebalanceTimeoutMs).max() ?? 0)
        rebalanceDeadlineMs = now + timeout
        joinNotBeforeMs = wasEmpty ? now + min(Int64(config.initialRebalanceDelayMs), timeout) : now
        actions += maybeCompleteJoin(now: now)
        return actions
    }

    private var allMembersJoined: Bool {
        pendingMembers.isEmpty && members.values.allSatisfy(\.isAwaitingJoin)
    }

    private mutating func maybeCompleteJoin(now: Int64) -> [GroupAction] {
        guard state == .preparingRebalance else { return [] }
        guard (allMembersJoined && now >= joinNotBeforeMs) || now >= rebalanceDeadlineMs else { return [] }
        return completeJoin(now: now)
    }

    /// Ends PreparingRebalance: members that did not rejoin are dropped, the generation advances,
    /// a protocol is chosen and every parked JoinGroup is answered.
    private mutating func completeJoin(now: Int64) -> [GroupAction] {
        var actions: [GroupAction] = []
        for id in memberOrder where members[id]?.isAwaitingJoin == false {
            actions += removeMember(id)
        }
        generationId += 1
        if members.isEmpty {
            protocolName = nil
            leaderId = nil
            transition(to: .empty, now: now)
            actions.append(.persistGroup(snapshot))
            return actions
        }
        protocolName = selectProtocol()
        if leaderId.map({ members[$0] == nil }) ?? true { leaderId = memberOrder.first }
        transition(to: .completingRebalance, now: now)
        for id in memberOrder {
            guard let token = members[id]?.awaitingJoin else { continue }
            members[id]!.awaitingJoin = nil
            members[id]!.lastHeartbeatMs = now
            actions.append(.completeJoin(token, joinResult(for: id)))
        }
        return actions
    }

    /// The protocol most members prefer among those all of them speak; ties go to the leader's order.
    private func selectProtocol() -> String? {
        let all = orderedMembers
        guard var common = all.first.map({ Set($0.protocols.map(\.name)) }) else { return nil }
        for m in all.dropFirst() { common.formIntersection(m.protocols.map(\.name)) }
        var votes: [String: Int] = [:]
        for m in all {
            if let choice = m.protocols.first(where: { common.contains($0.name) }) { votes[choice.name, default: 0] += 1 }
        }
        let preference = (leaderId.flatMap { members[$0] } ?? all[0]).protocols.map(\.name).filter(common.contains)
        return preference.max { a, b in
            let (va, vb) = (votes[a] ?? 0, votes[b] ?? 0)
            if va != vb { return va < vb }
            // Equal votes: the earlier in the leader's order wins, so it must compare as larger.
            return preference.firstIndex(of: a)! > preference.firstIndex(of: b)!
        }
    }

    private func joinResult(for memberId: String) -> JoinGroupResult {
        var result = JoinGroupResult(memberId: memberId)
        result.generationId = generationId
        result.protocolType = protocolType
        result.protocolName = protocolName
        result.leaderId = leaderId ?? ""
        if memberId == leaderId {
            result.members = orderedMembers.map {
                JoinedMember(memberId: $0.memberId, groupInstanceId: $0.groupInstanceId, metadata: $0.metadata(for: protocolName))
            }
        }
        return result
    }

    // MARK: SyncGroup

    public mutating func syncReceived(
        memberId: String, groupInstanceId: String?, generationId: Int32, protocolType: String?, protocolName: String?,
        assignments: [String: [UInt8]], token: RequestToken, now: Int64
    ) -> [GroupAction] {
        func reject(_ error: GroupError) -> [GroupAction] { [.completeSync(token, SyncGroupResult(error: error))] }
        if state == .dead { return reject(.coordinatorNotAvailable) }
        if let error = identify(memberId: memberId, groupInstanceId: groupInstanceId) { return reject(error) }
        guard generationId == self.generationId else { return reject(.illegalGeneration) }
        if let protocolType, protocolType != self.protocolType { return reject(.inconsistentGroupProtocol) }
        if let protocolName, protocolName != self.protocolName { return reject(.inconsistentGroupProtocol) }
        switch state {
        case .empty, .dead:
            return reject(.unknownMemberId)
        case .preparingRebalance:
            return reject(.rebalanceInProgress)
        case .stable:
            members[memberId]!.lastHeartbeatMs = now
            return [.completeSync(token, syncResult(for: memberId))]
        case .completingRebalance:
            var actions: [GroupAction] = []
            if let previous = members[memberId]!.awaitingSync {
                actions.append(.completeSync(previous, SyncGroupResult(error: .rebalanceInProgress)))
            }
            members[memberId]!.awaitingSync = token
            members[memberId]!.lastHeartbeatMs = now
            guard memberId == leaderId else { return actions }
            for id in memberOrder { members[id]!.assignment = assignments[id] ?? [] }
            transition(to: .stable, now: now)
            actions.append(.persistGroup(snapshot))
            for id in memberOrder {
                guard let parked = members[id]!.awaitingSync else { continue }
                members[id]!.awaitingSync = nil
                actions.append(.completeSync(parked, syncResult(for: id)))
            }
            return actions
        }
    }

    private func syncResult(for memberId: String) -> SyncGroupResult {
        var result = SyncGroupResult()
        result.protocolType = protocolType
        result.protocolName = protocolName
        result.assignment = members[memberId]?.assignment ?? []
        return result
    }

    /// Checks that a request names a current member, and that a static member is its latest incarnation.
    func identify(memberId: String, groupInstanceId: String?) -> GroupError? {
        if let instance = groupInstanceId {
            guard let current = staticMembers[instance] else { return .unknownMemberId }
            if current != memberId { return .fencedInstanceId }
        }
        return members[memberId] == nil ? .unknownMemberId : nil
    }

    // MARK: Heartbeat and LeaveGroup

    public mutating func heartbeatReceived(
        memberId: String, groupInstanceId: String?, generationId: Int32, now: Int64
    ) -> GroupError? {
        switch state {
        case .dead: return .coordinatorNotAvailable
        case .empty: return .unknownMemberId
        default: break
        }
        if let error = identify(memberId: memberId, groupInstanceId: groupInstanceId) { return error }
        guard generationId == self.generationId else { return .illegalGeneration }
        members[memberId]!.lastHeartbeatMs = now
        return state == .preparingRebalance ? .rebalanceInProgress : nil
    }

    /// A member leaving as LeaveGroup identifies it (v3+ batches several, by member id or instance id).
    public struct Leaving: Sendable, Hashable {
        public var memberId: String
        public var groupInstanceId: String?
        public init(memberId: String, groupInstanceId: String? = nil) {
            self.memberId = memberId
            self.groupInstanceId = groupInstanceId
        }
    }

    /// Removes the members; returns one result per member (nil = left) and the actions.
    public mutating func leaveReceived(_ leaving: [Leaving], now: Int64) -> (results: [GroupError?], actions: [GroupAction]) {
        if state == .dead { return (leaving.map { _ in .coordinatorNotAvailable }, []) }
        var actions: [GroupAction] = []
        var removed = false
        let results: [GroupError?] = leaving.map { who in
            if let instance = who.groupInstanceId {
                guard let current = staticMembers[instance] else { return .unknownMemberId }
                if !who.memberId.isEmpty && who.memberId != current { return .fencedInstanceId }
                actions += removeMember(current)
                removed = true
                return nil
            }
            if pendingMembers.removeValue(forKey: who.memberId) != nil {
                removed = true
                return nil
            }
            guard members[who.memberId] != nil else { return .unknownMemberId }
            actions += removeMember(who.memberId)
            removed = true
            return nil
        }
        if removed { actions += membershipShrank(now: now) }
        return (results, actions)
    }

    /// Drops a member, answering its parked requests so its connection is not left hanging.
    private mutating func removeMember(_ memberId: String) -> [GroupAction] {
        guard let member = members.removeValue(forKey: memberId) else { return [] }
        memberOrder.removeAll { $0 == memberId }
        if let instance = member.groupInstanceId, staticMembers[instance] == memberId { staticMembers[instance] = nil }
        if leaderId == memberId { leaderId = nil }
        var actions: [GroupAction] = []
        if let parked = member.awaitingJoin {
            actions.append(.completeJoin(parked, JoinGroupResult(error: .unknownMemberId, memberId: memberId)))
        }
        if let parked = member.awaitingSync {
            actions.append(.completeSync(parked, SyncGroupResult(error: .unknownMemberId)))
        }
        return actions
    }

    private mutating func membershipShrank(now: Int64) -> [GroupAction] {
        switch state {
        case .stable, .completingRebalance: prepareRebalance(now: now)
        case .preparingRebalance: maybeCompleteJoin(now: now)
        case .empty, .dead: []
        }
    }

    // MARK: Time

    /// Expires sessions and unused member ids, and ends a rebalance whose time is up.
    public mutating func tick(now: Int64) -> [GroupAction] {
        var actions: [GroupAction] = []
        var shrank = false
        for (id, deadline) in pendingMembers where now >= deadline {
            pendingMembers[id] = nil
            shrank = true
        }
        for id in memberOrder where members[id]?.sessionExpired(now: now) == true {
            actions += removeMember(id)
            shrank = true
        }
        if shrank { actions += membershipShrank(now: now) }
        actions += maybeCompleteJoin(now: now)
        return actions
    }

    /// The earliest time `tick` has something to do, so a driver can sleep until then.
    public var nextDeadlineMs: Int64? {
        var deadlines = Array(pendingMembers.values)
        for m in members.values where m.awaitingJoin == nil && m.awaitingSync == nil {
            deadlines.append(m.lastHeartbeatMs + Int64(m.sessionTimeoutMs))
        }
        if state == .preparingRebalance { deadlines.append(max(min(rebalanceDeadlineMs, joinNotBeforeMs), 0)) }
        return deadlines.min()
    }

    mutating func transition(to newState: State, now: Int64) {
        state = newState
        stateTimestampMs = now
    }
}
