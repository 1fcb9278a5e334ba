/// A partition's producer-state table as of a log offset. On start the broker loads the latest
/// snapshot and replays the log from `offset`, so the rebuilt table equals the one it had live.
/// Integrity (checksum, atomic replace) is the storage layer's job; this is only the encoding.
public struct ProducerStateSnapshot: Sendable, Equatable {
    /// Every batch below this offset is reflected in `table`.
    public var offset: Int64
    public var table: ProducerStateTable

    public init(offset: Int64, table: ProducerStateTable) {
        self.offset = offset
        self.table = table
    }

    static let formatVersion: UInt8 = 1

    public func encoded() -> [UInt8] {
        var w = BinaryWriter()
        w.put(Self.formatVersion)
        w.put(offset)
        let producers = table.producers.sorted { $0.key < $1.key }
        w.put(UInt32(producers.count))
        for (id, entry) in producers {
            w.put(id)
            w.put(entry.epoch)
            w.put(entry.lastTimestamp)
            w.put(entry.coordinatorEpoch)
            w.put(entry.currentTransactionFirstOffset ?? -1)
            w.put(UInt8(entry.batches.count))
            for b in entry.batches {
                w.put(b.firstSequence)
                w.put(b.lastSequence)
                w.put(b.firstOffset)
                w.put(b.lastOffset)
                w.put(b.timestamp)
            }
        }
        w.put(UInt32(table.abortedTransactions.count))
        for a in table.abortedTransactions {
            w.put(a.producerId)
            w.put(a.firstOffset)
            w.put(a.lastOffset)
        }
        return w.bytes
    }

    public struct DecodingError: Error, Equatable {
        public var reason: String
    }

    public init(decoding bytes: [UInt8]) throws {
        var r = BinaryReader(bytes)
        let version: UInt8 = try r.get()
        guard version == Self.formatVersion else { throw DecodingError(reason: "unknown snapshot version \(version)") }
        offset = try r.get()
        let count: UInt32 = try r.get()
        var producers: [Int64: ProducerStateTable.ProducerEntry] = [:]
        for _ in 0..<count {
            let id: Int64 = try r.get()
            let epoch: Int16 = try r.get()
            let lastTimestamp: Int64 = try r.get()
            let coordinatorEpoch: Int32 = try r.get()
            let txnFirstOffset: Int64 = try r.get()
            let batchCount: UInt8 = try r.get()
            guard batchCount <= ProducerStateTable.cachedBatchCount else {
                throw DecodingError(reason: "\(batchCount) cached batches")
            }
            var batches: [ProducerStateTable.BatchMetadata] = []
            for _ in 0..<batchCount {
                batches.append(.init(
                    firstSequence: try r.get(), lastSequence: try r.get(),
                    firstOffset: try r.get(), lastOffset: try r.get(), timestamp: try r.get()))
            }
            producers[id] = .init(
                epoch: epoch, batches: batches, lastTimestamp: lastTimestamp,
                currentTransactionFirstOffset: txnFirstOffset >= 0 ? txnFirstOffset : nil,
                coordinatorEpoch: coordinatorEpoch)
        }
        let abortedCount: UInt32 = try r.get()
        var aborted: [ProducerStateTable.AbortedTransaction] = []
        for _ in 0..<abortedCount {
            aborted.append(.init(producerId: try r.get(), firstOffset: try r.get(), lastOffset: try r.get()))
        }
        guard r.isAtEnd else { throw DecodingError(reason: "trailing bytes") }
        table = ProducerStateTable(producers: producers, abortedTransactions: aborted)
    }
}

/// Big-endian fixed-width encoding for OnceCore's snapshots (OnceCore has no NIO).
struct BinaryWriter {
    var bytes: [UInt8] = []
    mutating func put<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
    }
    mutating func put(_ string: String) {
        let utf8 = Array(string.utf8)
        put(UInt32(utf8.count))
        bytes.append(contentsOf: utf8)
    }
}

struct BinaryReader {
    private let bytes: [UInt8]
    private var position = 0
    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var isAtEnd: Bool { position == bytes.count }

    mutating func get<T: FixedWidthInteger>(_: T.Type = T.self) throws -> T {
        let size = MemoryLayout<T>.size
        guard position + size <= bytes.count else {
            throw ProducerStateSnapshot.DecodingError(reason: "truncated at byte \(position)")
        }
        var value: T = 0
        for i in 0..<size { value = value << 8 | T(bytes[position + i]) }
        position += size
        return value
    }

    mutating func bytes(_ count: Int) throws -> [UInt8] {
        guard count >= 0, position + count <= bytes.count else {
            throw ProducerStateSnapshot.DecodingError(reason: "truncated bytes at \(position)")
        }
        defer { position += count }
        return Array(bytes[position..<(position + count)])
    }

    mutating func get() throws -> String {
        let count = Int(try get(UInt32.self))
        guard position + count <= bytes.count else {
            throw ProducerStateSnapshot.DecodingError(reason: "truncated string at byte \(position)")
        }
        defer { position += count }
        return String(decoding: bytes[position..<(position + count)], as: UTF8.self)
    }
}
