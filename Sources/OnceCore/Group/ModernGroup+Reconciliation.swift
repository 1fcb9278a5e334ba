/// Moving one member towards its target assignment (Kafka's CurrentAssignmentBuilder). The member
/// first gives up what is no longer its own and only then, at the new epoch, takes partitions that
/// no other member still holds, so no partition ever has two owners.
extension ModernGroup {
    func reconcile(_ member: ModernGroupMember, owned: PartitionAssignment?, now: Int64) -> ModernGroupMember {
        var next: ModernGroupMember
        switch member.state {
        case .stable:
            guard member.memberEpoch != assignmentEpoch else { return member }
            next = nextAssignment(member, epoch: member.memberEpoch, owned: owned)
        case .unrevokedPartitions:
            if Self.stillOwnsAny(of: member.pendingRevocation, owned: owned) { return member }
            next = nextAssignment(member, epoch: member.memberEpoch + 1, owned: owned)
        case .unreleasedPartitions:
            next = nextAssignment(member, epoch: member.memberEpoch, owned: owned)
        }
        if next.state == .unrevokedPartitions {
            if member.state != .unrevokedPartitions || member.memberEpoch != next.memberEpoch {
                next.revocationDeadlineMs = now + Int64(next.rebalanceTimeoutMs)
            }
        } else {
            next.revocationDeadlineMs = nil
        }
        return next
    }

    /// Whether the member still reports any of `revoking`; a heartbeat without its owned
    /// partitions proves nothing, so it counts as still owning them.
    static func stillOwnsAny(of revoking: PartitionAssignment, owned: PartitionAssignment?) -> Bool {
        guard let owned else { return true }
        return !owned.intersecting(revoking).isEmpty
    }

    /// The member that holds a partition (assigned or not yet revoked), other than `memberId`.
    func owner(of topic: String, _ partition: Int32, except memberId: String) -> String? {
        for m in members.values where m.memberId != memberId {
            if m.assigned[topic]?.contains(partition) == true || m.pendingRevocation[topic]?.contains(partition) == true {
                return m.memberId
            }
        }
        return nil
    }

    private func nextAssignment(_ member: ModernGroupMember, epoch: Int32, owned: PartitionAssignment?) -> ModernGroupMember {
        let target = targetAssignment[member.memberId] ?? [:]
        let kept = member.assigned.intersecting(target)
        let revoking = member.assigned.subtracting(kept)
        var adding: PartitionAssignment = [:]
        var unreleased = false
        for (topic, partitions) in target.subtracting(kept) {
            for p in partitions {
                if owner(of: topic, p, except: member.memberId) != nil {
                    unreleased = true
                } else {
                    adding[topic, default: []].insert(p)
                }
            }
        }
        var next = member
        next.pendingRevocation = [:]
        if !revoking.isEmpty && Self.stillOwnsAny(of: revoking, owned: owned) {
            next.state = .unrevokedPartitions
            next.bumpEpoch(to: epoch)
            next.assigned = kept
            next.pendingRevocation = revoking
            return next
        }
        next.state = unreleased ? .unreleasedPartitions : .stable
        next.bumpEpoch(to: assignmentEpoch)
        next.assigned = kept.union(adding)
        return next
    }
}

extension ModernGroupMember {
    /// As Kafka's `updateMemberEpoch`: the previous epoch is the one before this step, even when
    /// the step keeps the epoch.
    mutating func bumpEpoch(to epoch: Int32) {
        previousMemberEpoch = memberEpoch
        memberEpoch = epoch
    }
}
