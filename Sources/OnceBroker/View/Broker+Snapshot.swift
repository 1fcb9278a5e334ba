import KafkaProtocol
import NIOCore
import OnceCore
import OnceStorage

/// Builds the operator's `BrokerSnapshot` from the broker's parts, one lock at a time: each part
/// hands out a copy, so nothing here holds a lock while another part does I/O.
extension Broker {
    func snapshot(health: BrokerSnapshot.Health) throws -> BrokerSnapshot {
        let now = clock()
        var topics: [BrokerSnapshot.Topic] = []
        var tables: [TopicPartitionKey: (table: ProducerStateTable, lso: Int64, hw: Int64)] = [:]
        for meta in storage.topics().sorted(by: { $0.name < $1.name }) {
            var partitions: [BrokerSnapshot.Partition] = []
            for index in 0..<meta.partitionCount {
                guard let log = storage.partition(topic: meta.name, partition: index) else { continue }
                let hw = log.highWatermark
                var lso = hw
                var producerRows: [BrokerSnapshot.Producer] = []
                if let state = try producers.producers(topic: meta, partition: index) {
                    lso = state.stableView(from: hw).lastStableOffset
                    let table = state.table
                    tables[TopicPartitionKey(meta.name, index)] = (table, lso, hw)
                    producerRows = table.producers.sorted { $0.key < $1.key }.map { id, entry in
                        BrokerSnapshot.Producer(
                            producerId: id, producerEpoch: entry.epoch, lastSequence: entry.lastSequence,
                            lastTimestampMs: entry.lastTimestamp, currentTransactionStartOffset: entry.currentTransactionFirstOffset)
                    }
                }
                partitions.append(BrokerSnapshot.Partition(
                    partition: index, logStartOffset: log.logStartOffset, highWatermark: hw, lastStableOffset: lso,
                    producers: producerRows))
            }
            topics.append(BrokerSnapshot.Topic(
                name: meta.name, id: "\(meta.id)", isInternal: InternalTopics.names.contains(meta.name), partitions: partitions))
        }

        /// The oldest open transaction on a partition is what its LSO stops at: read_committed
        /// readers see nothing past its first offset until it ends.
        func holdsLSO(_ key: TopicPartitionKey, producerId: Int64) -> Bool {
            guard let entry = tables[key],
                let open = entry.table.openTransactionsByProducer.first(where: { $0.producerId == producerId })
            else { return false }
            return open.firstOffset == entry.lso
        }

        let open = transactions.transactions.filter { [.ongoing, .prepareCommit, .prepareAbort].contains($0.state) }
        let openRows = open.sorted { ($0.startTimestamp, $0.transactionalId) < ($1.startTimestamp, $1.transactionalId) }.map { txn in
            let partitions = txn.partitions.sorted()
            return BrokerSnapshot.OpenTransaction(
                transactionalId: txn.transactionalId, producerId: txn.producerId, producerEpoch: txn.producerEpoch,
                state: txn.state.name, startTimestampMs: txn.startTimestamp, ageMs: max(0, now - txn.startTimestamp),
                timeoutMs: txn.timeoutMs, partitions: partitions.map { BrokerSnapshot.PartitionRef(topic: $0.topic, partition: $0.partition) },
                holdingLastStableOffset: partitions.filter { holdsLSO($0, producerId: txn.producerId) }
                    .map { BrokerSnapshot.PartitionRef(topic: $0.topic, partition: $0.partition) })
        }

        var hanging: [BrokerSnapshot.HangingTransaction] = []
        for (key, entry) in tables.sorted(by: { $0.key < $1.key }) {
            for txn in entry.table.openTransactionsByProducer
            where !transactions.isLive(producerId: txn.producerId, partition: key) {
                hanging.append(BrokerSnapshot.HangingTransaction(
                    topic: key.topic, partition: key.partition, producerId: txn.producerId, producerEpoch: txn.epoch,
                    firstOffset: txn.firstOffset, holdsLastStableOffset: txn.firstOffset == entry.lso))
            }
        }

        return BrokerSnapshot(
            health: health, topics: topics, transactions: openRows, hanging: hanging, groups: groupRows(), takenAtMs: now)
    }

    private func groupRows() -> [BrokerSnapshot.Group] {
        groups.groups().sorted { $0.groupId < $1.groupId }.map { group in
            let offsets = groups.committedOffsets(groupId: group.groupId, partitions: nil).sorted { $0.key < $1.key }
                .map { key, committed in
                    let hw = storage.partition(topic: key.topic, partition: key.partition)?.highWatermark ?? committed.offset
                    return BrokerSnapshot.GroupOffset(
                        topic: key.topic, partition: key.partition, committedOffset: committed.offset, highWatermark: hw,
                        lag: max(0, hw - committed.offset))
                }
            return BrokerSnapshot.Group(
                groupId: group.groupId, state: group.state.rawValue, protocolType: group.protocolType ?? "",
                protocolName: group.protocolName ?? "", generationId: group.generationId,
                members: group.orderedMembers.map { m in
                    BrokerSnapshot.Member(
                        memberId: m.memberId, groupInstanceId: m.groupInstanceId, clientId: m.clientId, clientHost: m.clientHost,
                        assignment: group.protocolType == "consumer" ? Self.consumerAssignment(m.assignment) : [])
                },
                offsets: offsets, totalLag: offsets.reduce(0) { $0 + $1.lag })
        }
    }

    /// A consumer-protocol assignment: a version, then topics with their partitions. Bytes that do
    /// not parse show as no assignment; they are the client's, and the group still works.
    static func consumerAssignment(_ bytes: [UInt8]) -> [BrokerSnapshot.PartitionRef] {
        var buffer = ByteBuffer(bytes: bytes)
        guard let version = buffer.readInteger(as: Int16.self), version >= 0,
            let assignment = try? ConsumerProtocolAssignment(from: &buffer, version: min(version, ConsumerProtocolAssignment.validVersions.upperBound))
        else { return [] }
        return assignment.assignedPartitions.flatMap { t in
            t.partitions.sorted().map { BrokerSnapshot.PartitionRef(topic: t.topic, partition: $0) }
        }
    }
}
