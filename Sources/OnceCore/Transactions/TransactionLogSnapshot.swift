/// Every transactional id's metadata as of an offset of the transaction log. The coordinator
/// restarts from the latest snapshot plus the log after it, and the log below the snapshot can go:
/// the log's own "compaction".
public struct TransactionLogSnapshot: Sendable, Equatable {
    /// Every transaction-log record below this offset is reflected in `transactions`.
    public var offset: Int64
    public var transactions: [TransactionMetadata]

    public init(offset: Int64, transactions: [TransactionMetadata]) {
        self.offset = offset
        self.transactions = transactions
    }

    public func encoded() -> [UInt8] {
        var w = BinaryWriter()
        w.put(UInt8(1))
        w.put(offset)
        let sorted = transactions.sorted { $0.transactionalId < $1.transactionalId }
        w.put(UInt32(sorted.count))
        for txn in sorted {
            let bytes = txn.encoded()
            w.put(UInt32(bytes.count))
            w.bytes += bytes
        }
        return w.bytes
    }

    public init(decoding bytes: [UInt8]) throws {
        var r = BinaryReader(bytes)
        let version: UInt8 = try r.get()
        guard version == 1 else { throw ProducerStateSnapshot.DecodingError(reason: "transaction snapshot version \(version)") }
        offset = try r.get()
        let count: UInt32 = try r.get()
        var transactions: [TransactionMetadata] = []
        for _ in 0..<count {
            let length = Int(try r.get(UInt32.self))
            transactions.append(try TransactionMetadata(decoding: try r.bytes(length)))
        }
        guard r.isAtEnd else { throw ProducerStateSnapshot.DecodingError(reason: "trailing bytes") }
        self.transactions = transactions
    }
}
