import KafkaProtocol
@testable import OnceBroker
import OnceCore

/// A KIP-848 member as the simulation drives it: a client that believes it owns what the last
/// answer it heard gave it, and after a lost answer restates everything (a full heartbeat), as
/// librdkafka and the Java client do.
struct SimulatedGroupMember {
    var memberId: String
    var epoch: Int32 = 0
    var joined = false
    var owned: Set<Int32> = []
    /// Stopped heartbeating without leaving (a crashed consumer).
    var crashed = false
    var needsFull = true
    /// A heartbeat let go without waiting is still unanswered: a client has one at a time.
    var awaiting = false
}

/// KIP-848 members in the simulation: they join, heartbeat, leave and die under the same lost,
/// duplicated and delayed requests and broker crashes as everything else, and two invariants are
/// checked after each of their steps: the coordinator never holds a partition in two members,
/// and no two clients the coordinator still counts as members believe they own the same
/// partition (the cooperative protocol revokes before it reassigns). With acknowledgements
/// durable, a member's epoch never goes back either.
extension BrokerSimulation {
    static let group = "kip848"

    func newGroupMember() -> SimulatedGroupMember {
        defer { nextGroupMember += 1 }
        return SimulatedGroupMember(memberId: "member-\(nextGroupMember)")
    }

    func groupMemberStep() async {
        let index = Int.random(in: 0..<groupMembers.count, using: &rng)
        var m = groupMembers[index]
        defer {
            groupMembers[index] = m
            checkGroupInvariants()
        }
        if m.awaiting { return }
        if m.crashed {
            // A restarted process joins as a new member; the old one's session runs out on its own.
            if rng.chance(0.3) { m = newGroupMember() }
            return
        }
        if m.joined && rng.chance(0.04) {
            trace("group member \(m.memberId) crashes")
            m.crashed = true
            return
        }
        guard let topicId = world.storage.topic(named: Self.topic)?.id else { return }
        var request = ConsumerGroupHeartbeatRequest()
        request.groupId = Self.group
        request.memberId = m.memberId
        if m.joined && rng.chance(0.04) {
            request.memberEpoch = ModernGroup.leaveEpoch
            _ = await send(request, version: 1, on: m.memberId)
            trace("group member \(m.memberId) leaves")
            m = newGroupMember()
            return
        }
        request.memberEpoch = m.joined ? m.epoch : 0
        if !m.joined || m.needsFull {
            request.rebalanceTimeoutMs = 5_000
            request.subscribedTopicNames = [Self.topic]
        }
        var owned = ConsumerGroupHeartbeatRequest.TopicPartitions()
        owned.topicId = topicId
        owned.partitions = m.owned.sorted()
        request.topicPartitions = m.joined ? (m.owned.isEmpty ? [] : [owned]) : []
        if rng.chance(options.backgroundHeartbeatChance) {
            // Let go: it races the steps after it (transactional offset commits, produces, other
            // members' heartbeats); its answer is applied when it comes back.
            m.awaiting = true
            let memberId = m.memberId
            world.send(world.frame(request, version: 1), on: memberId, as: ConsumerGroupHeartbeatResponse.self) { [self] r, _ in
                guard let index = groupMembers.firstIndex(where: { $0.memberId == memberId }) else { return }
                var m = groupMembers[index]
                m.awaiting = false
                if let r { apply(r, to: &m, request: request, topicId: topicId) } else { m.needsFull = true }
                groupMembers[index] = m
                checkGroupInvariants()
            }
            return
        }
        guard case .answered(let r) = await send(request, version: 1, on: m.memberId) else {
            m.needsFull = true
            return
        }
        apply(r, to: &m, request: request, topicId: topicId)
    }

    private func apply(
        _ r: ConsumerGroupHeartbeatResponse, to m: inout SimulatedGroupMember, request: ConsumerGroupHeartbeatRequest,
        topicId: KafkaUUID
    ) {
        trace("  heartbeat \(m.memberId) epoch \(request.memberEpoch) -> \(r.errorCode) epoch \(r.memberEpoch) \(r.assignment.map { "\($0.topicPartitions.flatMap(\.partitions))" } ?? "-")")
        switch ErrorCode(r.errorCode) {
        case .none:
            break
        case .fencedMemberEpoch, .unknownMemberId:
            // Fenced or forgotten: give everything up and join again under a new id.
            m = newGroupMember()
            return
        default:
            return
        }
        if m.joined && r.memberEpoch < m.epoch && history.acknowledgementsAreDurable {
            history.note("\(m.memberId)'s epoch went back from \(m.epoch) to \(r.memberEpoch)")
        }
        m.joined = true
        m.needsFull = false
        m.epoch = r.memberEpoch
        if let assignment = r.assignment {
            m.owned = Set(assignment.topicPartitions.filter { $0.topicId == topicId }.flatMap(\.partitions))
        }
    }

    func checkGroupInvariants() {
        guard let group = world.broker.groups.modernGroup(Self.group) else { return }
        var holder: [String: String] = [:]
        for member in group.orderedMembers {
            for p in member.owned.sortedPartitions {
                if let other = holder["\(p.topic)-\(p.partition)"] {
                    history.note("the coordinator gave \(p.topic)-\(p.partition) to \(other) and \(member.memberId)")
                }
                holder["\(p.topic)-\(p.partition)"] = member.memberId
            }
        }
        // What a client believes it owns came from an acknowledged heartbeat (or SyncGroup); a
        // power cut that erases acknowledged writes (a policy that does not sync) can leave that
        // belief stale until the member's next request, so only durable runs hold clients to it.
        guard history.acknowledgementsAreDurable else { return }
        var claimed: [Int32: String] = [:]
        let consumers = groupMembers.filter { $0.joined && !$0.crashed }.map { ($0.memberId, $0.owned) }
        let classics = classicMembers.filter { !$0.memberId.isEmpty }.map { ($0.memberId, $0.owned) }
        for (memberId, owned) in consumers + classics where group.members[memberId] != nil {
            for p in owned.sorted() {
                if let other = claimed[p] {
                    history.note("members \(other) and \(memberId) both consume \(Self.topic)-\(p)")
                }
                claimed[p] = memberId
            }
        }
    }
}
