import KafkaProtocol
import Logging
import NIOConcurrencyHelpers
import OnceCore
import OnceStorage

/// The broker's idempotence state: the durable producer-id allocator and each partition's
/// producer-state table, loaded on first use and snapshotted periodically and at shutdown.
final class ProducerRegistry: Sendable {
    private let storage: any LogStorage
    private let logger: Logger
    private let allocator: NIOLockedValueBox<ProducerIdAllocator>
    private let partitions = NIOLockedValueBox<[Key: PartitionProducers]>([:])

    private struct Key: Hashable {
        var topicId: KafkaUUID
        var partition: Int32
    }

    static let allocatorStateName = "producer-ids"

    init(storage: any LogStorage, logger: Logger) throws {
        self.storage = storage
        self.logger = logger
        var reserved: Int64 = 0
        // Over shared storage nothing is reserved until the first block is granted.
        if !(storage is any SharedProducerIdBlocks), let bytes = try storage.readState(named: Self.allocatorStateName) {
            guard bytes.count == 8 else { throw StorageError.corrupt("\(Self.allocatorStateName): \(bytes.count) bytes") }
            reserved = bytes.reduce(0) { $0 << 8 | Int64($1) }
        }
        allocator = NIOLockedValueBox(ProducerIdAllocator(reservedUpTo: reserved))
    }

    /// A producer id never handed out before in this cluster's life.
    func allocateProducerId() throws -> Int64 {
        try allocator.withLockedValue { a in
            let before = a
            let allocation = a.allocate()
            if case .reserveThenId = allocation, let shared = storage as? any SharedProducerIdBlocks {
                do {
                    a = ProducerIdAllocator(grantedBlockAt: try shared.reserveProducerIdBlock(size: ProducerIdAllocator.blockSize))
                } catch {
                    a = before
                    throw error
                }
                return a.allocate().id
            }
            if case .reserveThenId(_, let upTo) = allocation {
                do {
                    let bytes = (0..<8).reversed().map { UInt8(truncatingIfNeeded: upTo >> ($0 * 8)) }
                    try storage.writeState(named: Self.allocatorStateName, bytes)
                } catch {
                    a = before
                    throw error
                }
            }
            return allocation.id
        }
    }

    /// The producer state of a partition, loading it (snapshot + replay) on first use.
    func producers(topic: TopicMetadata, partition: Int32) throws -> PartitionProducers? {
        let key = Key(topicId: topic.id, partition: partition)
        if let existing = partitions.withLockedValue({ $0[key] }) { return existing }
        guard let log = storage.partition(topic: topic.name, partition: partition) else { return nil }
        // Loading replays the log, so it runs outside the registry lock; if two loads race, the
        // first one stored wins and the other is dropped before anything went through it.
        let loaded = try PartitionProducers.load(
            log: log, snapshotName: Self.snapshotName(topic.id, partition), storage: storage)
        return partitions.withLockedValue { p in
            if let winner = p[key] { return winner }
            p[key] = loaded
            return loaded
        }
    }

    static func snapshotName(_ topicId: KafkaUUID, _ partition: Int32) -> String {
        "producers-\(topicId)-\(partition)"
    }

    /// Every partition whose producer state is loaded, with its key.
    func loaded() -> [(key: TopicPartitionKey, producers: PartitionProducers)] {
        partitions.withLockedValue { Array($0.values) }.map { (TopicPartitionKey($0.log.topic, $0.log.partition), $0) }
            .sorted { $0.key < $1.key }
    }

    /// Writes a snapshot of every table that changed since its last one.
    func snapshotAll() {
        for producers in partitions.withLockedValue({ Array($0.values) }) {
            do {
                try producers.snapshot(to: storage)
            } catch {
                logger.warning("producer-state snapshot failed", metadata: ["state": "\(producers.snapshotName)", "error": "\(error)"])
            }
        }
    }

    /// Forgets producers idle for longer than `producer.id.expiration.ms`.
    func expireProducers(nowMs: Int64, expirationMs: Int64) {
        for producers in partitions.withLockedValue({ Array($0.values) }) {
            let expired = producers.expire(idleBefore: nowMs - expirationMs)
            if !expired.isEmpty {
                logger.info("expired idle producers", metadata: ["state": "\(producers.snapshotName)", "count": "\(expired.count)"])
            }
        }
    }

    /// Drops a partition's table, so its next use loads it again from the log.
    func forget(_ partition: TopicPartitionKey) {
        guard let topic = storage.topic(named: partition.topic) else { return }
        _ = partitions.withLockedValue { $0.removeValue(forKey: Key(topicId: topic.id, partition: partition.partition)) }
    }

    /// Drops a deleted topic's tables and snapshots.
    func topicDeleted(_ topic: TopicMetadata) {
        partitions.withLockedValue { p in
            for partition in 0..<topic.partitionCount { p[Key(topicId: topic.id, partition: partition)] = nil }
        }
        for partition in 0..<topic.partitionCount {
            try? storage.removeState(named: Self.snapshotName(topic.id, partition))
        }
    }
}
