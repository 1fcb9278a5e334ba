/// The cleaner's map from key to the latest offset of that key in the section being cleaned, in a
/// fixed amount of memory, as Kafka's SkimpyOffsetMap: each entry holds a 16-byte digest of its key
/// (keys can be any size, so holding them would make the bound meaningless) and an 8-byte offset,
/// in one table allocated up front. When the table is as full as its load factor allows it takes
/// no new key, and the pass cleans only up to the first record that did not fit.
public struct OffsetMap: Sendable {
    /// A key's digest. Two keys with one digest would make the older value of one of them be
    /// dropped for the other's: the digest is 128 bits of SipHash under the process's random seed,
    /// so such a pair can neither be met by chance nor crafted by a producer.
    public struct Digest: Sendable, Hashable {
        public var high: UInt64
        public var low: UInt64

        public init(high: UInt64, low: UInt64) {
            self.high = high
            self.low = low
        }

        public init(_ key: [UInt8]) {
            self.init(high: Self.half(key, salt: 0x6F6E_6365_6869_6768), low: Self.half(key, salt: 0x6F6E_6365_6C6F_7721))
        }

        private static func half(_ key: [UInt8], salt: UInt64) -> UInt64 {
            var hasher = Hasher()
            hasher.combine(salt)
            key.withUnsafeBytes { hasher.combine(bytes: $0) }
            return UInt64(bitPattern: Int64(hasher.finalize()))
        }
    }

    /// Digest (16) and offset (8), as Kafka counts an MD5 entry.
    public static let bytesPerEntry = 24
    /// The share of slots that may hold keys before the map counts as full (Kafka:
    /// `log.cleaner.io.buffer.load.factor`, 0.9), so probing stays short.
    public static let loadFactor = 0.9
    /// The smallest table that takes at least one key.
    public static let minimumBytes = 2 * bytesPerEntry

    /// Three words per slot: digest high, digest low, offset (-1 while the slot is free).
    private var table: [UInt64]
    public let slots: Int
    /// How many keys the map takes before it is full.
    public let capacity: Int
    public private(set) var count = 0
    /// The largest offset put, or nil before the first.
    public private(set) var latestOffset: Int64?

    /// A map of at most `maxBytes`, no larger than `expectedKeys` need, so a small dirty section does
    /// not allocate the whole bound.
    public init(maxBytes: Int, expectedKeys: Int = .max) {
        precondition(maxBytes >= Self.minimumBytes, "an offset map must take at least one key")
        let bound = maxBytes / Self.bytesPerEntry
        let needed = Double(max(expectedKeys, 1)) / Self.loadFactor + 1
        slots = needed >= Double(bound) ? bound : max(2, Int(needed))
        capacity = max(1, Int(Double(slots) * Self.loadFactor))
        table = [UInt64](repeating: 0, count: 3 * slots)
        for slot in 0..<slots { table[3 * slot + 2] = UInt64(bitPattern: -1) }
    }

    /// The bytes the table holds: never more than the `maxBytes` it was made with.
    public var bytes: Int { slots * Self.bytesPerEntry }

    /// Records `offset` as the latest of the key; false, changing nothing, when the key is new and
    /// the map is full.
    public mutating func put(_ digest: Digest, offset: Int64) -> Bool {
        precondition(offset >= 0, "offsets are never negative")
        let slot = probe(digest)
        if Int64(bitPattern: table[3 * slot + 2]) < 0 {
            guard count < capacity else { return false }
            table[3 * slot] = digest.high
            table[3 * slot + 1] = digest.low
            count += 1
        }
        table[3 * slot + 2] = UInt64(bitPattern: offset)
        latestOffset = max(latestOffset ?? offset, offset)
        return true
    }

    public func offset(of digest: Digest) -> Int64? {
        let offset = Int64(bitPattern: table[3 * probe(digest) + 2])
        return offset < 0 ? nil : offset
    }

    /// The digest's slot, or the free slot where it would go: linear probing from its hash, which
    /// ends because the load factor leaves a slot free.
    private func probe(_ digest: Digest) -> Int {
        var slot = Int(digest.low % UInt64(slots))
        while Int64(bitPattern: table[3 * slot + 2]) >= 0 {
            if table[3 * slot] == digest.high && table[3 * slot + 1] == digest.low { return slot }
            slot = (slot + 1) % slots
        }
        return slot
    }
}
