/// Hands out producer ids that are unique for the life of the cluster. Ids are reserved in blocks:
/// the end of the current block is made durable before any id from it is handed out, so after a crash
/// the allocator resumes past everything it might have given away (skipping the unused rest of a block
/// is cheap; handing an id out twice would merge two producers' sequences).
public struct ProducerIdAllocator: Sendable, Equatable {
    public static let blockSize: Int64 = 1000

    /// The next id to hand out.
    public private(set) var next: Int64
    /// Ids below this are durably reserved.
    public private(set) var reservedUpTo: Int64

    /// - Parameter reservedUpTo: the durable reservation read at start (0 on a new cluster).
    public init(reservedUpTo: Int64) {
        next = reservedUpTo
        self.reservedUpTo = reservedUpTo
    }

    /// Resumes from a block `[first, first + blockSize)` another party reserved for this
    /// allocator alone (the database several brokers share), so its ids need no reservation here.
    public init(grantedBlockAt first: Int64) {
        next = first
        reservedUpTo = first + Self.blockSize
    }

    public enum Allocation: Sendable, Equatable {
        /// Hand out this id.
        case id(Int64)
        /// Make `reserveUpTo` durable first, then hand out `id`.
        case reserveThenId(id: Int64, reserveUpTo: Int64)

        public var id: Int64 {
            switch self {
            case .id(let id), .reserveThenId(let id, _): id
            }
        }
    }

    public mutating func allocate() -> Allocation {
        let id = next
        next += 1
        guard id >= reservedUpTo else { return .id(id) }
        reservedUpTo = id + Self.blockSize
        return .reserveThenId(id: id, reserveUpTo: reservedUpTo)
    }
}
