import KafkaProtocol
import Logging
import NIOConcurrencyHelpers
import NIOCore
import OnceCore
import OnceStorage

/// Drives the `ConsumerGroup` state machines: holds them under one lock, parks JoinGroup/SyncGroup
/// requests as promises until their group answers them, writes group metadata and offsets through
/// `__consumer_offsets` before they take effect, and runs the clock (sessions, rebalance timeouts,
/// offset retention).
final class GroupCoordinator: Sendable {
    static let topicName = "__consumer_offsets"

    struct State {
        /// Classic groups, and the committed offsets of every group whatever its protocol: offsets
        /// are shared, so a group converting between protocols keeps its position.
        var groups: [String: ConsumerGroup] = [:]
        /// KIP-848 groups (ConsumerGroupHeartbeat). A group id is in at most one of the two with members.
        var modern: [String: ModernGroup] = [:]
        var nextToken: RequestToken = 0
        var joins: [RequestToken: EventLoopPromise<JoinGroupResult>] = [:]
        var syncs: [RequestToken: EventLoopPromise<SyncGroupResult>] = [:]
        /// Offsets committed inside transactions (TxnOffsetCommit) until their marker decides them,
        /// and where each committed offset was written.
        var transactional = TransactionalOffsets()
    }

    /// Promises to complete once the lock is released.
    struct Completions {
        var joins: [(EventLoopPromise<JoinGroupResult>, JoinGroupResult)] = []
        var syncs: [(EventLoopPromise<SyncGroupResult>, SyncGroupResult)] = []

        func run() {
            for (promise, result) in joins { promise.succeed(result) }
            for (promise, result) in syncs { promise.succeed(result) }
        }
    }

    let config: GroupConfig
    let storage: any LogStorage
    let logger: Logger
    let clock: @Sendable () -> Int64
    let state = NIOLockedValueBox(State())
    private let timers = NIOLockedValueBox<[RepeatedTask]>([])
    private let lastSnapshotOffset = NIOLockedValueBox<Int64>(-1)

    /// Serving from the start on one broker; in a cluster only between a gain and a loss of
    /// `__consumer_offsets-0`.
    let load: CoordinatorLoad

    /// Rebuilds the groups from `__consumer_offsets` if it exists and this broker serves them now.
    init(
        storage: any LogStorage, config: GroupConfig, logger: Logger, clock: @escaping @Sendable () -> Int64,
        servesAtStart: Bool = true
    ) throws {
        self.storage = storage
        self.config = config
        self.logger = logger
        self.clock = clock
        self.load = CoordinatorLoad(serving: servesAtStart)
        // In a cluster the topic (and this broker's lease, if it is the first) must exist before
        // the leases held at start are announced, or this broker would not coordinate until the
        // next heartbeat.
        if servesAtStart { try loadGroups() } else { _ = try offsetsLog() }
    }

    /// Replaces the state with what `__consumer_offsets` holds (snapshot, then the log after it).
    /// A JoinGroup or SyncGroup parked on the state replaced is told COORDINATOR_NOT_AVAILABLE,
    /// so its client finds the coordinator again.
    func loadGroups() throws {
        dropGroups()
        lastSnapshotOffset.withLockedValue { $0 = -1 }
        if let log = storage.partition(topic: Self.topicName, partition: 0) {
            var names: [KafkaUUID: String] = [:]
            for topic in storage.topics() { names[topic.id] = topic.name }
            let (replay, snapshotIsAhead) = try OffsetsLogReplay.replay(
                log, snapshot: try Self.loadSnapshot(storage), topicName: { names[$0] })
            let groups = replay.groups(config: config, now: clock())
            var modern = replay.modernGroups(config: config, now: clock())
            var topics: [String: Int32] = [:]
            for topic in storage.topics() { topics[topic.name] = topic.partitionCount }
            for id in modern.keys { _ = modern[id]!.refreshRegexes(topics: topics, now: clock(), restoring: true) }
            state.withLockedValue {
                $0.groups = groups
                $0.modern = modern
                $0.transactional = replay.transactional
            }
            logger.info(
                "loaded consumer groups",
                metadata: ["groups": "\(groups.count)", "records": "\(replay.recordsRead)"])
            if snapshotIsAhead {
                // Appends from the log's end must not hide behind the old snapshot's offset.
                logger.warning("consumer-offsets snapshot is past the log end; writing it again at the end")
                try snapshot()
            }
        }
    }

    /// Forgets every group, answering parked JoinGroup/SyncGroup requests as `stop` does.
    func dropGroups() {
        let error = GroupError.coordinatorNotAvailable
        let completions = state.withLockedValue { s in
            var c = Completions()
            c.joins = s.joins.values.map { ($0, JoinGroupResult(error: error)) }
            c.syncs = s.syncs.values.map { ($0, SyncGroupResult(error: error)) }
            s = State()
            return c
        }
        completions.run()
    }

    /// Creates the offsets topic if missing and starts the timers: sessions and rebalances are
    /// checked every `tickMs`, retention every `retentionCheckMs`.
    func start(on eventLoop: any EventLoop, tickMs: Int64 = 100, retentionCheckMs: Int64) throws {
        _ = try offsetsLog()
        let tick = eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(tickMs), delay: .milliseconds(tickMs)) {
            [self] _ in self.tick()
        }
        let cleanup = eventLoop.scheduleRepeatedTask(
            initialDelay: .milliseconds(retentionCheckMs), delay: .milliseconds(retentionCheckMs)
        ) { [self] _ in self.cleanUp() }
        timers.withLockedValue { $0 = [tick, cleanup] }
    }

    /// Stops the timers and answers every parked JoinGroup/SyncGroup, so no client waits on a
    /// broker that is going away and no promise is dropped unanswered.
    func stop() {
        for timer in timers.withLockedValue({ t in defer { t = [] }; return t }) { timer.cancel() }
        let completions = state.withLockedValue { s in
            var c = Completions()
            c.joins = s.joins.values.map { ($0, JoinGroupResult(error: .coordinatorNotAvailable)) }
            c.syncs = s.syncs.values.map { ($0, SyncGroupResult(error: .coordinatorNotAvailable)) }
            s.joins = [:]
            s.syncs = [:]
            return c
        }
        completions.run()
    }

    // MARK: Membership

    func join(groupId: String, _ request: ConsumerGroup.JoinRequest, on eventLoop: any EventLoop) -> EventLoopFuture<JoinGroupResult> {
        let promise = eventLoop.makePromise(of: JoinGroupResult.self)
        let now = clock()
        let topics = topicPartitionCounts()
        let completions = state.withLockedValue { s in
            let token = s.nextToken
            s.nextToken += 1
            s.joins[token] = promise
            if let modern = s.modern[groupId] {
                guard modern.isEmpty else {
                    return perform([classicJoinToModern(groupId, request, token: token, topics: topics, in: &s, now: now)], in: &s, now: now)
                }
                // An empty consumer group becomes a classic one whatever the migration policy, its offsets kept.
                appendModern(groupId, modern.tombstones, now: now)
                s.modern[groupId] = nil
            }
            var group = s.groups[groupId] ?? ConsumerGroup(groupId: groupId, config: config, now: now)
            let actions = group.joinReceived(request, token: token, now: now)
            s.groups[groupId] = group
            return perform(actions, in: &s, now: now)
        }
        completions.run()
        return promise.futureResult
    }

    func sync(
        groupId: String, memberId: String, groupInstanceId: String?, generationId: Int32, protocolType: String?,
        protocolName: String?, assignments: [String: [UInt8]], on eventLoop: any EventLoop
    ) -> EventLoopFuture<SyncGroupResult> {
        let now = clock()
        let promise = eventLoop.makePromise(of: SyncGroupResult.self)
        let completions = state.withLockedValue { s -> Completions in
            if s.modern[groupId] != nil {
                var c = Completions()
                c.syncs.append((promise, classicSyncToModern(
                    groupId, memberId: memberId, groupInstanceId: groupInstanceId, generationId: generationId,
                    protocolType: protocolType, protocolName: protocolName, in: &s, now: now)))
                return c
            }
            guard var group = s.groups[groupId] else {
                var c = Completions()
                c.syncs.append((promise, SyncGroupResult(error: .unknownMemberId)))
                return c
            }
            let token = s.nextToken
            s.nextToken += 1
            s.syncs[token] = promise
            let actions = group.syncReceived(
                memberId: memberId, groupInstanceId: groupInstanceId, generationId: generationId,
                protocolType: protocolType, protocolName: protocolName, assignments: assignments, token: token, now: now)
            s.groups[groupId] = group
            return perform(actions, in: &s, now: now)
        }
        completions.run()
        return promise.futureResult
    }

    func heartbeat(groupId: String, memberId: String, groupInstanceId: String?, generationId: Int32) -> GroupError? {
        let now = clock()
        return state.withLockedValue { s in
            if var modern = s.modern[groupId] {
                let error = modern.classicHeartbeatReceived(
                    memberId: memberId, instanceId: groupInstanceId, generationId: generationId, now: now)
                s.modern[groupId] = modern
                return error
            }
            guard var group = s.groups[groupId] else { return .unknownMemberId }
            let error = group.heartbeatReceived(
                memberId: memberId, groupInstanceId: groupInstanceId, generationId: generationId, now: now)
            s.groups[groupId] = group
            return error
        }
    }

    /// One result per leaving member, nil when it left.
    func leave(groupId: String, _ leaving: [ConsumerGroup.Leaving]) -> [GroupError?] {
        let now = clock()
        let (results, completions) = state.withLockedValue { s -> ([GroupError?], Completions) in
            if var modern = s.modern[groupId] {
                let (results, records) = modern.classicLeaveReceived(leaving, now: now)
                guard appendModern(groupId, records, now: now) else {
                    return (leaving.map { _ in .coordinatorNotAvailable }, Completions())
                }
                s.modern[groupId] = modern
                return (results, Completions())
            }
            guard var group = s.groups[groupId] else { return (leaving.map { _ in .unknownMemberId }, Completions()) }
            let (results, actions) = group.leaveReceived(leaving, now: now)
            s.groups[groupId] = group
            return (results, perform(actions, in: &s, now: now))
        }
        completions.run()
        return results
    }

    // MARK: Offsets

    /// Validates, writes and applies a commit. Returns a group-level error (which then applies to
    /// every partition) or the per-partition outcome.
    /// `memberEpochAware`: OffsetCommit v9+, whose generation field may carry a KIP-848 member epoch.
    func commit(
        groupId: String, memberId: String, groupInstanceId: String?, generationId: Int32,
        offsets: [GroupPartition: CommittedOffset], memberEpochAware: Bool = false
    ) -> Result<[GroupPartition: GroupError?], GroupError> {
        let now = clock()
        return state.withLockedValue { s in
            var group = s.groups[groupId] ?? ConsumerGroup(groupId: groupId, config: config, now: now)
            if let modern = s.modern[groupId] {
                if let error = modern.offsetCommitReceived(
                    memberId: memberId, memberEpoch: generationId, transactional: false, memberEpochAware: memberEpochAware)
                {
                    return .failure(error)
                }
            } else if memberEpochAware && generationId >= 0 && s.groups[groupId] == nil {
                // From v9 a commit for a group that does not exist says so, whichever protocol asked.
                return .failure(.groupIdNotFound)
            } else if let error = group.offsetCommitReceived(
                memberId: memberId, groupInstanceId: groupInstanceId, generationId: generationId, now: now)
            {
                if s.groups[groupId] != nil { s.groups[groupId] = group }
                return .failure(error)
            }
            let (outcome, accepted) = screen(offsets)
            if !accepted.isEmpty {
                let partitions = accepted.keys.sorted()
                let records = partitions.map { OffsetsRecord.offset(group: groupId, partition: $0, accepted[$0]) }
                guard let written = append(records, now: now) else { return .failure(.coordinatorNotAvailable) }
                for (i, partition) in partitions.enumerated() {
                    s.transactional.committed(group: groupId, partition: partition, position: written.baseOffset + Int64(i))
                }
                group.offsetsCommitted(accepted)
            }
            s.groups[groupId] = group
            return .success(outcome)
        }
    }

    /// TxnOffsetCommit (KIP-447): checked like a commit (generation and member, when the producer
    /// sends them), written as a transactional batch under the producer's id and epoch, and held
    /// pending: OffsetFetch sees the offsets only once the transaction's COMMIT marker is written.
    func transactionalCommit(
        groupId: String, producerId: Int64, producerEpoch: Int16, memberId: String, groupInstanceId: String?,
        generationId: Int32, offsets: [GroupPartition: CommittedOffset]
    ) -> Result<[GroupPartition: GroupError?], GroupError> {
        let now = clock()
        return state.withLockedValue { s in
            if let modern = s.modern[groupId] {
                // KIP-447 with member epochs; TxnOffsetCommit has no STALE_MEMBER_EPOCH, so a stale
                // epoch answers ILLEGAL_GENERATION as in Kafka.
                if let error = modern.offsetCommitReceived(
                    memberId: memberId, instanceId: groupInstanceId, memberEpoch: generationId, transactional: true,
                    memberEpochAware: true)
                {
                    return .failure(error == .staleMemberEpoch ? .illegalGeneration : error)
                }
            } else if var group = s.groups[groupId] {
                // Producers without group metadata (generation -1, no member) commit unchecked, as
                // before KIP-447.
                if generationId >= 0 || !memberId.isEmpty,
                    let error = group.offsetCommitReceived(
                        memberId: memberId, groupInstanceId: groupInstanceId, generationId: generationId,
                        transactional: true, now: now)
                {
                    s.groups[groupId] = group
                    return .failure(error)
                }
                s.groups[groupId] = group
            }
            let (outcome, accepted) = screen(offsets)
            let partitions = accepted.keys.sorted()
            let records = partitions.map { OffsetsRecord.offset(group: groupId, partition: $0, accepted[$0]) }
            guard !records.isEmpty else { return .success(outcome) }
            let written: AppendResult
            do {
                written = try offsetsLog().append(RecordBatch.encode(
                    records: records.map { $0.record() }, baseTimestamp: now, producerId: producerId,
                    producerEpoch: producerEpoch, isTransactional: true))
            } catch {
                logger.error("writing __consumer_offsets failed", metadata: ["error": "\(error)"])
                return .failure(.coordinatorNotAvailable)
            }
            s.transactional.transactionalCommitted(producerId: producerId, partitions.enumerated().map { i, partition in
                .init(group: groupId, partition: partition, offset: accepted[partition]!, position: written.baseOffset + Int64(i))
            })
            return .success(outcome)
        }
    }

    /// Splits a commit into the offsets that may be stored and per-partition errors for the rest
    /// (metadata too large, a partition that does not exist). nil error = accepted.
    private func screen(_ offsets: [GroupPartition: CommittedOffset])
        -> (outcome: [GroupPartition: GroupError?], accepted: [GroupPartition: CommittedOffset])
    {
        var outcome: [GroupPartition: GroupError?] = [:]
        var accepted: [GroupPartition: CommittedOffset] = [:]
        for (partition, committed) in offsets {
            if (committed.metadata?.utf8.count ?? 0) > config.maxOffsetMetadataBytes {
                outcome[partition] = .offsetMetadataTooLarge
            } else if let topic = storage.topic(named: partition.topic), topic.partitionCount > partition.partition,
                partition.partition >= 0
            {
                accepted[partition] = committed
                outcome[partition] = .some(nil)
            } else {
                outcome[partition] = .unknownTopicOrPartition
            }
        }
        return (outcome, accepted)
    }

    /// Writes a transaction's marker to `__consumer_offsets` (through `write`) and applies its
    /// offsets on COMMIT or drops them on ABORT, exactly as replaying the log would decide. Both under
    /// the groups' lock, so a snapshot never sees the marker without its effect.
    func writeTransactionMarker(producerId: Int64, commit: Bool, write: () throws -> Bool) throws {
        try state.withLockedValue { s in
            guard try write() else { return }
            for (groupId, committed) in s.transactional.markerWritten(producerId: producerId, commit: commit) {
                var group = s.groups[groupId] ?? ConsumerGroup(groupId: groupId, config: config, now: clock())
                group.offsetsCommitted(committed)
                s.groups[groupId] = group
            }
        }
    }

    static let snapshotName = "consumer-offsets"

    /// Writes the groups' state as the compacted form of `__consumer_offsets` (one group record per
    /// group, one record per committed offset, and each undecided transaction's offsets that can
    /// still win in a batch under its producer id), with the log offset it reflects; then deletes
    /// the log segments it replaced, once the log is synced up to there. Restart reads the snapshot
    /// and the log after it through the same replay.
    func snapshot() throws {
        // A broker not coordinating holds no groups worth a snapshot, and would overwrite the leader's.
        guard load.current != .idle, let log = storage.partition(topic: Self.topicName, partition: 0) else { return }
        let (offset, batches): (Int64, ByteBuffer) = state.withLockedValue { s in
            var batches = ByteBufferAllocator().buffer(capacity: 4096)
            var records: [OffsetsRecord] = []
            for id in s.groups.keys.sorted() {
                let group = s.groups[id]!
                records.append(.group(id, group.snapshot))
                for partition in group.offsets.keys.sorted() {
                    records.append(.offset(group: id, partition: partition, group.offsets[partition]))
                }
            }
            if !records.isEmpty {
                var batch = OffsetsRecord.batch(records, timestamp: 0)
                batches.writeBuffer(&batch)
            }
            let modern = s.modern.keys.sorted().flatMap { id in
                s.modern[id]!.records.map { ModernGroupRecordCodec.record(group: id, $0, topicId: topicId) }
            }
            if !modern.isEmpty {
                var batch = RecordBatch.encode(records: modern, baseTimestamp: 0)
                batches.writeBuffer(&batch)
            }
            for (producerId, pending) in s.transactional.pendingThatCanWin.sorted(by: { $0.key < $1.key }) {
                let records = pending.map { OffsetsRecord.offset(group: $0.group, partition: $0.partition, $0.offset) }
                var batch = RecordBatch.encode(
                    records: records.map { $0.record() }, baseTimestamp: 0, producerId: producerId, producerEpoch: 0,
                    isTransactional: true)
                batches.writeBuffer(&batch)
            }
            return (log.logEndOffset, batches)
        }
        guard offset > lastSnapshotOffset.withLockedValue({ $0 }) else { return }
        try log.sync()
        var document = ByteBufferAllocator().buffer(capacity: batches.readableBytes + 8)
        document.writeInteger(offset)
        document.writeImmutableBuffer(batches)
        try storage.writeState(named: Self.snapshotName, Array(document.readableBytesView), describing: log)
        lastSnapshotOffset.withLockedValue { $0 = max($0, offset) }
        try log.deleteSegments(below: offset)
    }

    private static func loadSnapshot(_ storage: any LogStorage) throws -> (offset: Int64, batches: ByteBuffer)? {
        guard let bytes = try storage.readState(named: snapshotName) else { return nil }
        var buffer = ByteBuffer(bytes: bytes)
        guard let offset = buffer.readInteger(as: Int64.self) else {
            throw StorageError.corrupt("\(snapshotName): too short")
        }
        return (offset, buffer)
    }

    /// Partitions of a group with transactional offsets not yet decided (OffsetFetch with
    /// requireStable answers UNSTABLE_OFFSET_COMMIT for them).
    func unstablePartitions(groupId: String) -> Set<GroupPartition> {
        state.withLockedValue { $0.transactional.unstablePartitions(group: groupId) }
    }

    /// The committed offsets of the partitions asked for (all of them when nil); nil when the
    /// group is unknown.
    func committedOffsets(groupId: String, partitions: [GroupPartition]?) -> [GroupPartition: CommittedOffset] {
        state.withLockedValue { s in
            guard let offsets = s.groups[groupId]?.offsets else { return [:] }
            guard let partitions else { return offsets }
            return offsets.filter { partitions.contains($0.key) }
        }
    }

    /// OffsetDelete: removes offsets of topics the group does not consume right now.
    func deleteOffsets(
        groupId: String, partitions: [GroupPartition], subscribedTopics: (ConsumerGroup) -> Set<String>
    ) -> Result<[GroupPartition: GroupError?], GroupError> {
        let now = clock()
        return state.withLockedValue { s in
            guard var group = s.groups[groupId], group.state != .dead else { return .failure(.groupIdNotFound) }
            let subscribed = subscribedTopics(group)
            // A live consumer group's subscriptions protect its offsets as a classic group's do.
            var topics: [String: Int32] = [:]
            for topic in storage.topics() { topics[topic.name] = topic.partitionCount }
            let modernSubscribed = s.modern[groupId].map { $0.isEmpty ? [] : $0.subscribedTopics(topics: topics) } ?? []
            var outcome: [GroupPartition: GroupError?] = [:]
            var removed: [GroupPartition] = []
            for p in partitions {
                if modernSubscribed.contains(p.topic) {
                    outcome[p] = .groupSubscribedToTopic
                } else if let error = group.canDeleteOffsets(of: p.topic, subscribedTopics: subscribed) {
                    outcome[p] = error
                } else {
                    outcome[p] = .some(nil)
                    if group.offsets[p] != nil { removed.append(p) }
                }
            }
            if !removed.isEmpty {
                guard append(removed.map { .offset(group: groupId, partition: $0, nil) }, now: now) != nil else {
                    return .failure(.coordinatorNotAvailable)
                }
                for p in removed { s.transactional.removed(group: groupId, partition: p) }
                group.offsetsRemoved(removed)
            }
            s.groups[groupId] = group
            return .success(outcome)
        }
    }

    // MARK: Administration

    /// A copy of every group, for ListGroups and DescribeGroups.
    func groups() -> [ConsumerGroup] {
        state.withLockedValue { s in s.groups.values.sorted { $0.groupId < $1.groupId } }
    }

    func group(_ groupId: String) -> ConsumerGroup? {
        state.withLockedValue { $0.groups[groupId] }
    }

    /// A copy of every KIP-848 group, for ListGroups.
    func modernGroups() -> [ModernGroup] {
        state.withLockedValue { s in s.modern.values.sorted { $0.groupId < $1.groupId } }
    }

    func modernGroup(_ groupId: String) -> ModernGroup? {
        state.withLockedValue { $0.modern[groupId] }
    }

    /// DeleteGroups: one result per group, nil when deleted.
    func delete(groupIds: [String]) -> [GroupError?] {
        let now = clock()
        return state.withLockedValue { s in
            groupIds.map { id in
                if let modern = s.modern[id] {
                    guard modern.isEmpty else { return .nonEmptyGroup }
                    guard appendModern(id, modern.tombstones, now: now) else { return .coordinatorNotAvailable }
                    s.modern[id] = nil
                    if s.groups[id] == nil { return nil }
                }
                guard var group = s.groups[id] else { return .groupIdNotFound }
                let offsets = group.offsets.keys.sorted()
                if let error = group.deleteReceived(now: now) {
                    if error == .groupIdNotFound { s.groups[id] = nil }
                    return error
                }
                let records = offsets.map { OffsetsRecord.offset(group: id, partition: $0, nil) } + [.group(id, nil)]
                guard append(records, now: now) != nil else { return .coordinatorNotAvailable }
                for p in offsets { s.transactional.removed(group: id, partition: p) }
                s.groups[id] = nil
                return nil
            }
        }
    }

    /// Forgets every group's offsets of a deleted topic.
    func topicDeleted(_ topic: String) {
        let now = clock()
        state.withLockedValue { s in removeOffsets(in: &s, now: now) { $0.topic == topic } }
    }

    // MARK: Time

    /// Expires sessions and ends rebalances whose time has come.
    func tick(now: Int64? = nil) {
        let now = now ?? clock()
        let completions = state.withLockedValue { s in
            var completions = Completions()
            for (id, group) in s.groups {
                guard let deadline = group.nextDeadlineMs, deadline <= now else { continue }
                var group = group
                let actions = group.tick(now: now)
                s.groups[id] = group
                let more = perform(actions, in: &s, now: now)
                completions.joins += more.joins
                completions.syncs += more.syncs
            }
            var topics: [String: Int32]?
            for (id, group) in s.modern where group.regexRefreshDue(now: now) {
                if topics == nil {
                    topics = [:]
                    for topic in storage.topics() { topics![topic.name] = topic.partitionCount }
                }
                var group = group
                let records = group.refreshRegexes(topics: topics!, now: now)
                s.modern[id] = group
                appendModern(id, records, now: now)
            }
            for (id, group) in s.modern {
                guard let deadline = group.nextDeadlineMs, deadline <= now else { continue }
                let expired = group.expiredMembers(now: now)
                if group.downgradesOnRemoving(expired), let more = downgrade(id, group, removing: expired, in: &s, now: now) {
                    logger.info("consumer group members expired; downgraded to classic", metadata: ["group": "\(id)"])
                    completions.joins += more.joins
                    completions.syncs += more.syncs
                    continue
                }
                var group = group
                let records = group.tick(now: now)
                s.modern[id] = group
                if !records.isEmpty {
                    logger.info("consumer group members expired", metadata: ["group": "\(id)"])
                    appendModern(id, records, now: now)
                }
            }
            return completions
        }
        completions.run()
    }

    /// Offsets retention, offsets of topics that no longer exist, and empty groups with nothing left.
    func cleanUp(now: Int64? = nil) {
        let now = now ?? clock()
        state.withLockedValue { s in
            removeOffsets(in: &s, now: now) { storage.topic(named: $0.topic) == nil }
            for (id, modern) in s.modern where modern.isEmpty && s.groups[id].map(\.offsets.isEmpty) ?? true {
                // An empty consumer group with no offsets left is forgotten, as an empty classic one is.
                guard appendModern(id, modern.tombstones, now: now) else { return }
                s.modern[id] = nil
            }
            for (id, group) in s.groups where s.modern[id]?.isEmpty ?? true {
                let expired = group.expiredOffsets(now: now)
                if !expired.isEmpty {
                    guard append(expired.map { .offset(group: id, partition: $0, nil) }, now: now) != nil else { return }
                    for p in expired { s.transactional.removed(group: id, partition: p) }
                    s.groups[id]!.offsetsRemoved(expired)
                    logger.info("expired committed offsets", metadata: ["group": "\(id)", "partitions": "\(expired.count)"])
                }
                if s.groups[id]!.isForgettable {
                    guard append([.group(id, nil)], now: now) != nil else { return }
                    s.groups[id] = nil
                }
            }
        }
    }

    private func removeOffsets(in s: inout State, now: Int64, where gone: (GroupPartition) -> Bool) {
        for (id, group) in s.groups {
            let stale = group.offsets.keys.filter(gone).sorted()
            guard !stale.isEmpty else { continue }
            guard append(stale.map { .offset(group: id, partition: $0, nil) }, now: now) != nil else { return }
            for p in stale { s.transactional.removed(group: id, partition: p) }
            s.groups[id]!.offsetsRemoved(stale)
        }
    }

    // MARK: Performing actions

    /// Runs actions under the lock: writes are appended in order; promises are collected for after.
    func perform(_ actions: [GroupAction], in s: inout State, now: Int64) -> Completions {
        var completions = Completions()
        for action in actions {
            switch action {
            case .completeJoin(let token, let result):
                if let promise = s.joins.removeValue(forKey: token) { completions.joins.append((promise, result)) }
            case .completeSync(let token, let result):
                if let promise = s.syncs.removeValue(forKey: token) { completions.syncs.append((promise, result)) }
            case .persistGroup(let snapshot):
                _ = append([.group(snapshot.groupId, snapshot)], now: now)
            }
        }
        return completions
    }

    /// Appends records to the offsets log (record i at `baseOffset + i`); nil (logged) when storage refuses.
    @discardableResult
    func append(_ records: [OffsetsRecord], now: Int64) -> AppendResult? {
        do {
            return try offsetsLog().append(OffsetsRecord.batch(records, timestamp: now))
        } catch {
            logger.error("writing __consumer_offsets failed", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// The single partition of `__consumer_offsets`, created on first need.
    func offsetsLog() throws -> any PartitionLog {
        try InternalTopics.log(Self.topicName, in: storage, logger: logger)
    }
}
