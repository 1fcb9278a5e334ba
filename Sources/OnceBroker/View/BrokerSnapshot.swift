/// A copy of what the broker knows at one instant, for operators (the web console and its JSON
/// API). Plain values: whoever reads it holds no broker lock, and encoding it does no broker I/O.
public struct BrokerSnapshot: Sendable, Codable, Equatable {
    public var health: Health
    public var topics: [Topic]
    /// Coordinator transactions that are not complete (Ongoing, PrepareCommit, PrepareAbort).
    public var transactions: [OpenTransaction]
    /// Open transactions on partitions that no live coordinator transaction owns: read_committed
    /// readers wait on their LSO until a marker ends them.
    public var hanging: [HangingTransaction]
    public var groups: [Group]
    public var takenAtMs: Int64

    public struct Health: Sendable, Codable, Equatable {
        public var version: String
        public var clusterId: String
        public var nodeId: Int32
        public var listen: String
        public var startedAtMs: Int64
        public var uptimeMs: Int64
        public var openConnections: Int
    }

    public struct Topic: Sendable, Codable, Equatable {
        public var name: String
        public var id: String
        public var isInternal: Bool
        public var partitions: [Partition]
    }

    public struct Partition: Sendable, Codable, Equatable {
        public var partition: Int32
        public var logStartOffset: Int64
        public var highWatermark: Int64
        /// What read_committed consumers may read up to (ListOffsets with isolation READ_COMMITTED).
        public var lastStableOffset: Int64
        public var producers: [Producer]
    }

    public struct Producer: Sendable, Codable, Equatable {
        public var producerId: Int64
        public var producerEpoch: Int16
        public var lastSequence: Int32
        public var lastTimestampMs: Int64
        /// The first offset of this producer's open transaction here, if it has one.
        public var currentTransactionStartOffset: Int64?
    }

    public struct PartitionRef: Sendable, Codable, Hashable {
        public var topic: String
        public var partition: Int32
    }

    public struct OpenTransaction: Sendable, Codable, Equatable {
        public var transactionalId: String
        public var producerId: Int64
        public var producerEpoch: Int16
        public var state: String
        public var startTimestampMs: Int64
        public var ageMs: Int64
        public var timeoutMs: Int32
        public var partitions: [PartitionRef]
        /// Partitions whose LSO is this transaction's first offset there: it alone holds them back.
        public var holdingLastStableOffset: [PartitionRef]
    }

    public struct HangingTransaction: Sendable, Codable, Equatable {
        public var topic: String
        public var partition: Int32
        public var producerId: Int64
        public var producerEpoch: Int16
        public var firstOffset: Int64
        public var holdsLastStableOffset: Bool
    }

    public struct Group: Sendable, Codable, Equatable {
        public var groupId: String
        public var state: String
        public var protocolType: String
        public var protocolName: String
        public var generationId: Int32
        public var members: [Member]
        public var offsets: [GroupOffset]
        public var totalLag: Int64
    }

    public struct Member: Sendable, Codable, Equatable {
        public var memberId: String
        public var groupInstanceId: String?
        public var clientId: String
        public var clientHost: String
        /// Decoded from the consumer protocol's assignment; empty for other protocol types.
        public var assignment: [PartitionRef]
    }

    public struct GroupOffset: Sendable, Codable, Equatable {
        public var topic: String
        public var partition: Int32
        public var committedOffset: Int64
        public var highWatermark: Int64
        /// High watermark minus committed offset, as kafka-consumer-groups reports it.
        public var lag: Int64
    }
}
