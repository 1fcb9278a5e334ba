/// One KIP-848 consumer group (ConsumerGroupHeartbeat): the coordinator assigns partitions itself
/// and moves members to the new assignment incrementally, so a partition is revoked from one member
/// before another gets it and nobody stops consuming the partitions it keeps.
///
/// Epochs: `groupEpoch` grows when membership, subscriptions or the subscribed topics' partitions
/// change; the target assignment is recomputed for it (`assignmentEpoch`); each member reaches that
/// epoch on its own heartbeats. Pure: every event takes the time and the topics' partition counts,
/// and what must be made durable comes back as `ModernGroupRecord`s, in the order Kafka writes them.
public struct ModernGroup: Sendable {
    /// The epoch of a heartbeat that leaves the group for good.
    public static let leaveEpoch: Int32 = -1
    /// The epoch of a static member's heartbeat leaving for a while, keeping its partitions.
    public static let leaveStaticEpoch: Int32 = -2

    /// Kafka's consumer group states, spelled as ListGroups and ConsumerGroupDescribe report them.
    public enum State: String, Sendable, Hashable {
        case empty = "Empty"
        case assigning = "Assigning"
        case reconciling = "Reconciling"
        case stable = "Stable"
        case dead = "Dead"
    }

    /// What a ConsumerGroupHeartbeat carries. nil fields did not change since the last heartbeat.
    public struct Heartbeat: Sendable, Hashable {
        public var memberId: String
        public var memberEpoch: Int32
        public var instanceId: String?
        public var rackId: String?
        /// -1 when unchanged.
        public var rebalanceTimeoutMs: Int32
        public var subscribedTopicNames: [String]?
        public var subscribedTopicRegex: String?
        public var serverAssignor: String?
        /// The partitions the member owns; nil when unchanged.
        public var ownedPartitions: PartitionAssignment?
        public var clientId: String
        public var clientHost: String
        /// From ConsumerGroupHeartbeat v1 (KIP-1082) the client makes up its member id itself.
        public var clientGeneratesMemberId: Bool
        /// The id a joining member gets when it brings none (v0); injected to stay deterministic.
        public var newMemberId: String

        public init(
            memberId: String, memberEpoch: Int32, instanceId: String? = nil, rackId: String? = nil,
            rebalanceTimeoutMs: Int32 = -1, subscribedTopicNames: [String]? = nil, subscribedTopicRegex: String? = nil,
            serverAssignor: String? = nil, ownedPartitions: PartitionAssignment? = nil, clientId: String = "",
            clientHost: String = "", clientGeneratesMemberId: Bool = true, newMemberId: String = ""
        ) {
            self.memberId = memberId
            self.memberEpoch = memberEpoch
            self.instanceId = instanceId
            self.rackId = rackId
            self.rebalanceTimeoutMs = rebalanceTimeoutMs
            self.subscribedTopicNames = subscribedTopicNames
            self.subscribedTopicRegex = subscribedTopicRegex
            self.serverAssignor = serverAssignor
            self.ownedPartitions = ownedPartitions
            self.clientId = clientId
            self.clientHost = clientHost
            self.clientGeneratesMemberId = clientGeneratesMemberId
            self.newMemberId = newMemberId
        }

        /// A heartbeat that restates everything (a join, or a member recovering from an error):
        /// it gets the whole assignment back even if nothing changed.
        var isFull: Bool {
            memberEpoch == 0
                || (rebalanceTimeoutMs != -1 && (subscribedTopicNames != nil || subscribedTopicRegex != nil)
                    && ownedPartitions != nil)
        }
    }

    /// The answer to a heartbeat. `assignment` is nil when the member's partitions did not change.
    public struct HeartbeatResult: Sendable, Hashable {
        public var error: GroupError?
        public var errorMessage: String?
        public var memberId: String?
        public var memberEpoch: Int32 = 0
        public var heartbeatIntervalMs: Int32 = 0
        public var assignment: PartitionAssignment?

        public init(error: GroupError? = nil, errorMessage: String? = nil, memberId: String? = nil) {
            self.error = error
            self.errorMessage = errorMessage
            self.memberId = memberId
        }
    }

    public let groupId: String
    public let config: GroupConfig
    public internal(set) var groupEpoch: Int32 = 0
    public internal(set) var assignmentEpoch: Int32 = 0
    public internal(set) var members: [String: ModernGroupMember] = [:]
    /// The assignment each member is moving towards, computed at `assignmentEpoch`.
    public internal(set) var targetAssignment: [String: PartitionAssignment] = [:]
    /// Partition counts of the subscribed topics when the target was last computed; a change
    /// (CreatePartitions, a topic appearing) bumps the group epoch.
    public internal(set) var subscriptionMetadata: [String: Int32] = [:]
    /// The assignor the last target assignment used.
    public internal(set) var assignorName: String?
    /// The topics each subscribed regex matched when last resolved. As in Kafka 4.x, a regex is
    /// resolved apart from the heartbeat that brings it (`refreshRegexes`), so a member's first
    /// assignment holds its literal topics and the matches follow one epoch later.
    public internal(set) var resolvedRegexes: [String: Set<String>] = [:]
    /// When the regexes were last resolved against the topics.
    public internal(set) var regexesResolvedAtMs: Int64 = .min
    public internal(set) var stateTimestampMs: Int64

    public init(groupId: String, config: GroupConfig = GroupConfig(), now: Int64) {
        self.groupId = groupId
        self.config = config
        self.stateTimestampMs = now
    }

    public var state: State {
        if members.isEmpty { return .empty }
        if groupEpoch > assignmentEpoch { return .assigning }
        let settled = members.values.allSatisfy {
            $0.hasLeftTemporarily || ($0.state == .stable && $0.memberEpoch == assignmentEpoch)
        }
        return settled ? .stable : .reconciling
    }

    public var isEmpty: Bool { members.isEmpty }

    /// Members sorted by id, for deterministic answers.
    public var orderedMembers: [ModernGroupMember] { members.values.sorted { $0.memberId < $1.memberId } }

    func staticMember(_ instanceId: String) -> ModernGroupMember? {
        members.values.first { $0.instanceId == instanceId }
    }

    // MARK: ConsumerGroupHeartbeat

    public mutating func heartbeatReceived(
        _ hb: Heartbeat, topics: [String: Int32], now: Int64
    ) -> (result: HeartbeatResult, records: [ModernGroupRecord]) {
        func reject(_ error: GroupError, _ message: String) -> (HeartbeatResult, [ModernGroupRecord]) {
            (HeartbeatResult(error: error, errorMessage: message), [])
        }
        if let invalid = Self.validate(hb, assignors: config.consumerAssignors) { return reject(invalid.0, invalid.1) }
        if hb.memberEpoch == Self.leaveEpoch || hb.memberEpoch == Self.leaveStaticEpoch {
            return leave(hb, now: now)
        }
        let memberId = hb.memberId.isEmpty ? hb.newMemberId : hb.memberId
        if members.count >= config.consumerMaxSize && members[memberId] == nil
            && !(hb.instanceId.map { staticMember($0) != nil } ?? false)
        {
            return reject(.groupMaxSizeReached, "the group has reached its maximum of \(config.consumerMaxSize) members")
        }

        var records: [ModernGroupRecord] = []
        let member: ModernGroupMember
        switch identify(hb, memberId: memberId, now: now, records: &records) {
        case .failure(let rejection): return reject(rejection.error, rejection.message)
        case .success(let found): member = found
        }

        var updated = member
        if let instance = hb.instanceId { updated.instanceId = instance }
        if let rack = hb.rackId { updated.rackId = rack }
        if hb.rebalanceTimeoutMs != -1 { updated.rebalanceTimeoutMs = hb.rebalanceTimeoutMs }
        if let assignor = hb.serverAssignor { updated.serverAssignor = assignor }
        if let names = hb.subscribedTopicNames { updated.subscribedTopicNames = names }
        if let regex = hb.subscribedTopicRegex { updated.subscribedTopicRegex = regex.isEmpty ? nil : regex }
        updated.clientId = hb.clientId
        updated.clientHost = hb.clientHost
        updated.lastHeartbeatMs = now
        // Whoever heartbeats speaks the consumer protocol from now on, as in Kafka.
        updated.classic = nil
        updated.rejoinDeadlineMs = nil
        let reconciled = admit(updated, replacing: member, owned: hb.ownedPartitions, topics: topics, now: now, records: &records)

        var result = HeartbeatResult(memberId: memberId)
        result.memberEpoch = reconciled.memberEpoch
        result.heartbeatIntervalMs = config.consumerHeartbeatIntervalMs
        if hb.isFull || reconciled.assigned != member.assigned {
            result.assignment = reconciled.assigned
        }
        return (result, records)
    }

    /// Puts a member's new subscription into the group and moves it one step towards its target:
    /// bumps the group epoch when membership or subscriptions changed, recomputes the target if
    /// the epoch moved, and reconciles the member against what it reports owning. Both protocols'
    /// members (heartbeat and JoinGroup) go through here, so they share one set of rules.
    mutating func admit(
        _ updated: ModernGroupMember, replacing member: ModernGroupMember, owned: PartitionAssignment?,
        topics: [String: Int32], now: Int64, records: inout [ModernGroupRecord]
    ) -> ModernGroupMember {
        let memberId = updated.memberId
        let isNew = members[memberId] == nil
        var bump =
            isNew
            || Set(updated.subscribedTopicNames) != Set(member.subscribedTopicNames)
            || updated.subscribedTopicRegex != member.subscribedTopicRegex
            || updated.serverAssignor != member.serverAssignor
        if isNew || !member.sameSubscription(as: updated) {
            records.append(.member(memberId, updated))
        }
        let wasEmpty = members.isEmpty
        members[memberId] = updated
        forgetUnusedRegexes()

        let metadata = subscribedPartitionCounts(topics)
        if metadata != subscriptionMetadata {
            subscriptionMetadata = metadata
            records.append(.subscriptionMetadata(metadata))
            bump = true
        }
        if bump {
            groupEpoch += 1
            records.append(.groupEpoch(groupEpoch))
        }
        if groupEpoch > assignmentEpoch { records += computeTargetAssignment(topics: topics) }

        let reconciled = reconcile(members[memberId]!, owned: owned, now: now)
        if isNew || !reconciled.sameAssignmentState(as: members[memberId]!) {
            records.append(.currentAssignment(memberId, reconciled))
        }
        members[memberId] = reconciled
        if wasEmpty { stateTimestampMs = now }
        return reconciled
    }

    /// Kafka's request checks, in its order; nil when the heartbeat is well formed.
    static func validate(_ hb: Heartbeat, assignors: [ServerAssignor]) -> (GroupError, String)? {
        if hb.instanceId == "" { return (.invalidRequest, "InstanceId can't be empty.") }
        if hb.rackId == "" { return (.invalidRequest, "RackId can't be empty.") }
        switch hb.memberEpoch {
        case 0:
            if hb.clientGeneratesMemberId && hb.memberId.isEmpty { return (.invalidRequest, "MemberId can't be empty.") }
            if hb.rebalanceTimeoutMs == -1 { return (.invalidRequest, "RebalanceTimeoutMs must be provided in first request.") }
            if hb.ownedPartitions.map({ !$0.isEmpty }) ?? true {
                return (.invalidRequest, "TopicPartitions must be empty when (re-)joining.")
            }
            let names = hb.subscribedTopicNames ?? []
            if names.isEmpty && (hb.subscribedTopicRegex ?? "").isEmpty {
                return (.invalidRequest, "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.")
            }
        case 1..., leaveEpoch:
            if hb.memberId.isEmpty { return (.invalidRequest, "MemberId can't be empty.") }
        case leaveStaticEpoch:
            if hb.memberId.isEmpty { return (.invalidRequest, "MemberId can't be empty.") }
            if hb.instanceId == nil { return (.invalidRequest, "InstanceId can't be null.") }
        default:
            return (.invalidRequest, "MemberEpoch is invalid.")
        }
        if let name = hb.serverAssignor, ServerAssignor(rawValue: name).map(assignors.contains) != true {
            return (.unsupportedAssignor, "ServerAssignor \(name) is not supported. Supported assignors: "
                + assignors.map(\.rawValue).joined(separator: ", ") + ".")
        }
        if let regex = hb.subscribedTopicRegex, !regex.isEmpty, (try? Regex(regex)) == nil {
            return (.invalidRegularExpression, "SubscribedTopicRegex \(regex) is not a valid regular expression.")
        }
        return nil
    }

    /// The member the heartbeat speaks for: an existing one whose epoch checks out, a new one, or a
    /// static member's new incarnation taking over the one that left with epoch -2.
    mutating func identify(
        _ hb: Heartbeat, memberId: String, now: Int64, records: inout [ModernGroupRecord]
    ) -> Result<ModernGroupMember, Rejection> {
        let joining = hb.memberEpoch == 0
        guard let instance = hb.instanceId else {
            if let member = members[memberId] {
                return checkEpoch(member, hb).map { .failure($0) } ?? .success(member)
            }
            guard joining else { return .failure(Rejection(.unknownMemberId, "Member \(memberId) is not a member of group \(groupId).")) }
            return .success(ModernGroupMember(memberId: memberId, lastHeartbeatMs: now))
        }
        let existing = staticMember(instance)
        if joining {
            guard let existing else {
                if let member = members[memberId] {
                    return checkEpoch(member, hb).map { .failure($0) } ?? .success(member)
                }
                return .success(ModernGroupMember(memberId: memberId, instanceId: instance, lastHeartbeatMs: now))
            }
            if existing.memberId == memberId {
                return checkEpoch(existing, hb).map { .failure($0) } ?? .success(existing)
            }
            guard existing.hasLeftTemporarily else {
                return .failure(Rejection(.unreleasedInstanceId,
                    "Static member \(memberId) with instance id \(instance) cannot join the group because the instance id is owned by \(existing.memberId) member."))
            }
            // The new incarnation inherits the old one's place and partitions, so a restart moves nothing.
            var replacement = existing
            replacement.memberId = memberId
            replacement.memberEpoch = 0
            replacement.previousMemberEpoch = 0
            replacement.lastHeartbeatMs = now
            records += removalRecords(existing.memberId)
            members[existing.memberId] = nil
            let target = targetAssignment.removeValue(forKey: existing.memberId) ?? [:]
            targetAssignment[memberId] = target
            members[memberId] = replacement
            records.append(.member(memberId, replacement))
            records.append(.targetMember(memberId, target))
            return .success(replacement)
        }
        guard let existing else { return .failure(Rejection(.unknownMemberId, "Instance id \(instance) is unknown.")) }
        guard existing.memberId == memberId else {
            return .failure(Rejection(.fencedInstanceId,
                "Static member \(memberId) with instance id \(instance) was fenced by member \(existing.memberId)."))
        }
        return checkEpoch(existing, hb).map { .failure($0) } ?? .success(existing)
    }

    struct Rejection: Error {
        var error: GroupError
        var message: String
        init(_ error: GroupError, _ message: String) {
            self.error = error
            self.message = message
        }
    }

    /// A member ahead of us, or behind us other than by the one answer it may have lost, is fenced:
    /// it must give up its partitions and join again.
    private func checkEpoch(_ member: ModernGroupMember, _ hb: Heartbeat) -> Rejection? {
        if hb.memberEpoch > member.memberEpoch {
            return Rejection(.fencedMemberEpoch,
                "The consumer group member has a greater member epoch (\(hb.memberEpoch)) than the one known by the group coordinator (\(member.memberEpoch)). The member must abandon all its partitions and rejoin.")
        }
        if hb.memberEpoch < member.memberEpoch {
            let subset = hb.ownedPartitions.map { member.assigned.contains($0) } ?? false
            if hb.memberEpoch != member.previousMemberEpoch || !subset {
                return Rejection(.fencedMemberEpoch,
                    "The consumer group member has a smaller member epoch (\(hb.memberEpoch)) than the one known by the group coordinator (\(member.memberEpoch)). The member must abandon all its partitions and rejoin.")
            }
        }
        return nil
    }

    /// Epoch -1 removes the member and rebalances; epoch -2 (static members) keeps its place and
    /// partitions for its return, so a rolling restart moves nothing.
    private mutating func leave(_ hb: Heartbeat, now: Int64) -> (result: HeartbeatResult, records: [ModernGroupRecord]) {
        let member: ModernGroupMember
        if let instance = hb.instanceId {
            guard let existing = staticMember(instance) else {
                return (HeartbeatResult(error: .unknownMemberId, errorMessage: "Instance id \(instance) is unknown."), [])
            }
            guard existing.memberId == hb.memberId else {
                return (HeartbeatResult(error: .fencedInstanceId,
                    errorMessage: "Static member \(hb.memberId) with instance id \(instance) was fenced by member \(existing.memberId)."), [])
            }
            member = existing
        } else {
            guard let existing = members[hb.memberId] else {
                return (HeartbeatResult(error: .unknownMemberId,
                    errorMessage: "Member \(hb.memberId) is not a member of group \(groupId)."), [])
            }
            member = existing
        }
        var result = HeartbeatResult(memberId: member.memberId)
        result.memberEpoch = hb.memberEpoch
        if hb.memberEpoch == Self.leaveStaticEpoch {
            var parked = member
            parked.memberEpoch = Self.leaveStaticEpoch
            parked.lastHeartbeatMs = now
            members[member.memberId] = parked
            return (result, [.currentAssignment(member.memberId, parked)])
        }
        return (result, remove(member.memberId, now: now))
    }

    /// Takes a member out (leave, expired session, revocation too slow) and bumps the group epoch so
    /// its partitions are reassigned.
    mutating func remove(_ memberId: String, now: Int64) -> [ModernGroupRecord] {
        var records = removalRecords(memberId)
        members[memberId] = nil
        targetAssignment[memberId] = nil
        forgetUnusedRegexes()
        if members.isEmpty { stateTimestampMs = now }
        groupEpoch += 1
        records.append(.groupEpoch(groupEpoch))
        return records
    }

    /// Tombstones for a member, in Kafka's order: current assignment, target, then the member.
    func removalRecords(_ memberId: String) -> [ModernGroupRecord] {
        [.currentAssignment(memberId, nil), .targetMember(memberId, nil), .member(memberId, nil)]
    }

    // MARK: Time

    /// Removes members whose session expired or that did not revoke within their rebalance timeout.
    public mutating func tick(now: Int64) -> [ModernGroupRecord] {
        var records: [ModernGroupRecord] = []
        for memberId in expiredMembers(now: now).sorted() { records += remove(memberId, now: now) }
        return records
    }

    /// Members whose session ran out or who did not revoke within their rebalance timeout.
    public func expiredMembers(now: Int64) -> Set<String> {
        Set(members.values.filter { m in
            let sessionOver = now >= m.lastHeartbeatMs + Int64(sessionTimeoutMs(of: m))
            let revocationOver = m.state == .unrevokedPartitions && m.revocationDeadlineMs.map { now >= $0 } == true
            let rejoinOver = m.rejoinDeadlineMs.map { now >= $0 } == true
            return sessionOver || revocationOver || rejoinOver
        }.map(\.memberId))
    }

    /// A classic member keeps the session timeout it joined with; the others get the group's.
    func sessionTimeoutMs(of member: ModernGroupMember) -> Int32 {
        member.classic?.sessionTimeoutMs ?? config.consumerSessionTimeoutMs
    }

    /// The earliest time `tick` has something to do.
    public var nextDeadlineMs: Int64? {
        members.values.flatMap { m in
            [m.lastHeartbeatMs + Int64(sessionTimeoutMs(of: m))]
                + (m.state == .unrevokedPartitions ? [m.revocationDeadlineMs].compactMap { $0 } : [])
                + [m.rejoinDeadlineMs].compactMap { $0 }
        }.min()
    }

    // MARK: Subscriptions

    /// Topics a member subscribes to that exist: by name, and those its regex matched when last
    /// resolved.
    public func subscribedTopics(of member: ModernGroupMember, topics: [String: Int32]) -> Set<String> {
        var result = Set(member.subscribedTopicNames.filter { topics[$0] != nil })
        if let pattern = member.subscribedTopicRegex {
            result.formUnion((resolvedRegexes[pattern] ?? []).filter { topics[$0] != nil })
        }
        return result
    }

    /// How often subscribed regexes are matched against the topics again, so topics created later
    /// join the subscription (Kafka refreshes them on a similar schedule). A regex not resolved yet
    /// is resolved on the next refresh whatever the time.
    public static let regexRefreshIntervalMs: Int64 = 10_000

    /// A regex no member subscribes to any more is dropped at once, as Kafka drops its resolution:
    /// subscribing to it again resolves it afresh.
    mutating func forgetUnusedRegexes() {
        let used = Set(members.values.compactMap(\.subscribedTopicRegex))
        resolvedRegexes = resolvedRegexes.filter { used.contains($0.key) }
    }

    /// Whether `refreshRegexes` has work: a regex never resolved, or the interval passed.
    public func regexRefreshDue(now: Int64) -> Bool {
        let used = Set(members.values.compactMap(\.subscribedTopicRegex))
        guard !used.isEmpty else { return false }
        return !used.isSubset(of: resolvedRegexes.keys) || now >= regexesResolvedAtMs &+ Self.regexRefreshIntervalMs
    }

    /// Matches every subscribed regex against the topics (whole names, as Kafka's RE2J `matches`;
    /// internal topics never match). When the subscription's topics change the group epoch is
    /// bumped, so the next heartbeats reassign. `restoring` (after a restart) only fills the cache.
    public mutating func refreshRegexes(topics: [String: Int32], now: Int64, restoring: Bool = false) -> [ModernGroupRecord] {
        var resolved: [String: Set<String>] = [:]
        for pattern in Set(members.values.compactMap(\.subscribedTopicRegex)) {
            guard let regex = try? Regex(pattern) else { continue }
            resolved[pattern] = Set(topics.keys.filter { !$0.hasPrefix("__") && (try? regex.wholeMatch(in: $0)) != nil })
        }
        regexesResolvedAtMs = now
        guard resolved != resolvedRegexes else { return [] }
        resolvedRegexes = resolved
        guard !restoring else { return [] }
        let metadata = subscribedPartitionCounts(topics)
        guard metadata != subscriptionMetadata else { return [] }
        subscriptionMetadata = metadata
        groupEpoch += 1
        return [.subscriptionMetadata(metadata), .groupEpoch(groupEpoch)]
    }

    /// Every topic some member subscribes to, by name or regex, that exists.
    public func subscribedTopics(topics: [String: Int32]) -> Set<String> {
        members.values.reduce(into: Set<String>()) { $0.formUnion(subscribedTopics(of: $1, topics: topics)) }
    }

    func subscribedPartitionCounts(_ topics: [String: Int32]) -> [String: Int32] {
        var counts: [String: Int32] = [:]
        for name in subscribedTopics(topics: topics) { counts[name] = topics[name] }
        return counts
    }

    /// The assignor most members ask for; ties and members asking for none go to the configured default.
    private var chosenAssignor: ServerAssignor {
        var votes: [ServerAssignor: Int] = [:]
        for m in members.values {
            if let a = m.serverAssignor.flatMap(ServerAssignor.init(rawValue:)) { votes[a, default: 0] += 1 }
        }
        let order = config.consumerAssignors.isEmpty ? [ServerAssignor.uniform] : config.consumerAssignors
        return order.max { (votes[$0] ?? 0, -order.firstIndex(of: $0)!) < (votes[$1] ?? 0, -order.firstIndex(of: $1)!) }!
    }

    /// Recomputes every member's target at the current group epoch.
    private mutating func computeTargetAssignment(topics: [String: Int32]) -> [ModernGroupRecord] {
        let assignor = chosenAssignor
        assignorName = assignor.rawValue
        let input = orderedMembers.map {
            ServerAssignor.Member(
                memberId: $0.memberId, instanceId: $0.instanceId, topics: subscribedTopics(of: $0, topics: topics),
                current: targetAssignment[$0.memberId] ?? [:])
        }
        let computed = assignor.assign(input, partitionCounts: topics)
        var records: [ModernGroupRecord] = []
        for member in orderedMembers {
            let target = computed[member.memberId] ?? [:]
            if targetAssignment[member.memberId] != target { records.append(.targetMember(member.memberId, target)) }
            targetAssignment[member.memberId] = target
        }
        assignmentEpoch = groupEpoch
        records.append(.targetEpoch(assignmentEpoch))
        return records
    }
}

extension ModernGroupMember {
    /// Equal in what Kafka's member metadata record holds.
    func sameSubscription(as other: ModernGroupMember) -> Bool {
        instanceId == other.instanceId && rackId == other.rackId && clientId == other.clientId
            && clientHost == other.clientHost && rebalanceTimeoutMs == other.rebalanceTimeoutMs
            && subscribedTopicNames == other.subscribedTopicNames && subscribedTopicRegex == other.subscribedTopicRegex
            && serverAssignor == other.serverAssignor && classic == other.classic
    }

    /// Equal in what Kafka's current-assignment record holds.
    func sameAssignmentState(as other: ModernGroupMember) -> Bool {
        memberEpoch == other.memberEpoch && previousMemberEpoch == other.previousMemberEpoch && state == other.state
            && assigned == other.assigned && pendingRevocation == other.pendingRevocation
    }
}
