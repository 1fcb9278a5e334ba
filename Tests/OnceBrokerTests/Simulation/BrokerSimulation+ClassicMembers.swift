import KafkaProtocol
import NIOCore
@testable import OnceBroker
import OnceCore

/// A classic-protocol member (an eager consumer such as librdkafka's or kafka-python's range
/// assignor) as the simulation drives it inside the KIP-848 group: it believes it owns what its
/// last SyncGroup gave it, drops everything when told to rejoin, and starts over when forgotten.
struct SimulatedClassicMember {
    var memberId = ""
    var generation: Int32 = -1
    var owned: Set<Int32> = []
    /// Joined and synced at `generation`; otherwise the next step (re)joins.
    var synced = false
}

/// Classic members beside the consumer-protocol ones: the same faults, the same invariant (no
/// partition with two owners, at the coordinator or in the clients' beliefs). They join only while
/// the group has members, so their JoinGroup is served by the consumer group at once: a classic
/// group would park it until a rebalance timer the simulation does not run.
extension BrokerSimulation {
    func classicMemberStep() async {
        let index = Int.random(in: 0..<classicMembers.count, using: &rng)
        var m = classicMembers[index]
        defer {
            classicMembers[index] = m
            checkGroupInvariants()
        }
        guard let group = world.broker.groups.modernGroup(Self.group), !group.isEmpty else { return }
        if m.synced && rng.chance(0.04) {
            var leave = LeaveGroupRequest()
            leave.groupId = Self.group
            var who = LeaveGroupRequest.MemberIdentity()
            who.memberId = m.memberId
            leave.members = [who]
            _ = await send(leave, version: 3)
            trace("classic member \(m.memberId) leaves")
            m = SimulatedClassicMember()
            return
        }
        if m.synced {
            var hb = HeartbeatRequest()
            hb.groupId = Self.group
            hb.memberId = m.memberId
            hb.generationId = m.generation
            guard case .answered(let r) = await send(hb, version: 3) else { return }
            trace("  classic heartbeat \(m.memberId) gen \(m.generation) -> \(r.errorCode)")
            react(to: ErrorCode(r.errorCode), &m)
            return
        }
        // Eager: everything is given up before joining again.
        m.owned = []
        var join = JoinGroupRequest()
        join.groupId = Self.group
        join.memberId = m.memberId
        join.sessionTimeoutMs = 10_000
        join.rebalanceTimeoutMs = 5_000
        join.protocolType = "consumer"
        var proto = JoinGroupRequest.JoinGroupRequestProtocol()
        proto.name = "range"
        proto.metadata = Self.subscriptionBytes
        join.protocols = [proto]
        guard case .answered(let joined) = await send(join, version: 5) else { return }
        trace("  classic join \(m.memberId) -> \(joined.errorCode) gen \(joined.generationId)")
        switch ErrorCode(joined.errorCode) {
        case .none:
            break
        case .memberIdRequired:
            m.memberId = joined.memberId
            return
        default:
            react(to: ErrorCode(joined.errorCode), &m)
            return
        }
        m.memberId = joined.memberId
        m.generation = joined.generationId
        var sync = SyncGroupRequest()
        sync.groupId = Self.group
        sync.memberId = m.memberId
        sync.generationId = m.generation
        guard case .answered(let synced) = await send(sync, version: 3) else { return }
        trace("  classic sync \(m.memberId) gen \(m.generation) -> \(synced.errorCode)")
        guard ErrorCode(synced.errorCode) == ErrorCode.none else {
            react(to: ErrorCode(synced.errorCode), &m)
            return
        }
        m.owned = Self.partitions(in: synced.assignment)
        m.synced = true
    }

    private func react(to code: ErrorCode, _ m: inout SimulatedClassicMember) {
        switch code {
        case .none:
            break
        case .unknownMemberId, .fencedInstanceId:
            m = SimulatedClassicMember()
        default:
            // REBALANCE_IN_PROGRESS, ILLEGAL_GENERATION, a coordinator hiccup: rejoin, owning nothing.
            m.owned = []
            m.synced = false
        }
    }

    private static var subscriptionBytes: [UInt8] {
        var s = ConsumerProtocolSubscription()
        s.topics = [topic]
        var b = ByteBufferAllocator().buffer(capacity: 32)
        b.writeInteger(Int16(1))
        s.encode(into: &b, version: 1)
        return Array(buffer: b)
    }

    private static func partitions(in assignment: [UInt8]) -> Set<Int32> {
        var b = ByteBuffer(bytes: assignment)
        guard let version = b.readInteger(as: Int16.self),
            let a = try? ConsumerProtocolAssignment(from: &b, version: min(version, 3))
        else { return [] }
        return Set(a.assignedPartitions.filter { $0.topic == topic }.flatMap(\.partitions))
    }
}
