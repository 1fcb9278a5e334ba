/// Chooses a partition for a keyed record exactly as the Java client's default partitioner does,
/// so that a key lands on the same partition whichever client produced it (librdkafka matches it
/// with `partitioner=murmur2_random`).
public enum Partitioner {
    /// The partition for `key` among `partitionCount` partitions: the murmur2 hash with its sign
    /// bit cleared, modulo the count.
    public static func partition(forKey key: some Collection<UInt8>, partitionCount: Int32) -> Int32 {
        precondition(partitionCount > 0, "a topic has at least one partition")
        return (murmur2(key) & 0x7fff_ffff) % partitionCount
    }

    /// Kafka's variant of MurmurHash2: seed 0x9747b28c, little-endian 4-byte words, tail bytes
    /// mixed in the reference order. Returned as the signed value Java computes.
    public static func murmur2(_ data: some Collection<UInt8>) -> Int32 {
        let bytes = Array(data)
        let m: UInt32 = 0x5bd1_e995
        let r: UInt32 = 24
        var h: UInt32 = 0x9747_b28c ^ UInt32(truncatingIfNeeded: bytes.count)

        let wholeWords = bytes.count / 4
        for i in 0..<wholeWords {
            let base = i * 4
            var k = UInt32(bytes[base]) | UInt32(bytes[base + 1]) << 8 | UInt32(bytes[base + 2]) << 16
                | UInt32(bytes[base + 3]) << 24
            k &*= m
            k ^= k >> r
            k &*= m
            h &*= m
            h ^= k
        }

        let tail = wholeWords * 4
        switch bytes.count % 4 {
        case 3:
            h ^= UInt32(bytes[tail + 2]) << 16
            h ^= UInt32(bytes[tail + 1]) << 8
            h ^= UInt32(bytes[tail])
            h &*= m
        case 2:
            h ^= UInt32(bytes[tail + 1]) << 8
            h ^= UInt32(bytes[tail])
            h &*= m
        case 1:
            h ^= UInt32(bytes[tail])
            h &*= m
        default:
            break
        }

        h ^= h >> 13
        h &*= m
        h ^= h >> 15
        return Int32(bitPattern: h)
    }
}
