import Foundation
import OnceCore

/// A seeded mutator of valid inputs. The same seed gives the same mutations in the same order, so a
/// failure found by one run (its seed is printed first) replays exactly with `ONCE_FUZZ_SEED`.
struct Fuzzer {
    private var random: SplitMix64

    init(seed: UInt64) { random = SplitMix64(seed: seed) }

    /// The seed from `ONCE_FUZZ_SEED`, else `fallback`, so CI runs the same inputs every time and a
    /// soak run can pass a fresh one.
    static func seed(default fallback: UInt64) -> UInt64 {
        ProcessInfo.processInfo.environment["ONCE_FUZZ_SEED"].flatMap { UInt64($0) } ?? fallback
    }

    /// `ONCE_FUZZ_ITERATIONS`, else `fallback`: the short run `swift test` makes by default.
    static func iterations(default fallback: Int) -> Int {
        ProcessInfo.processInfo.environment["ONCE_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? fallback
    }

    mutating func next() -> UInt64 { random.next() }

    mutating func below(_ n: Int) -> Int { random.below(n) }

    /// Values that sit on the edges decoders check: lengths, counts and varint boundaries.
    private static let edges: [UInt32] = [
        0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFF_FFFF, 0x8000_0000, 0xFFFF_FFFF, 0xFFFF_FFFE,
    ]

    /// One to four mutations of `input`: bit flips, byte overwrites, edge integers written over
    /// length fields, runs of varint continuation bytes, insertions, deletions, truncations and
    /// duplicated chunks.
    mutating func mutate(_ input: [UInt8]) -> [UInt8] {
        var bytes = input
        for _ in 0...below(4) {
            switch below(9) {
            case 0 where !bytes.isEmpty:
                bytes[below(bytes.count)] ^= UInt8(1 << below(8))
            case 1 where !bytes.isEmpty:
                bytes[below(bytes.count)] = UInt8(truncatingIfNeeded: next())
            case 2 where bytes.count >= 4:
                let at = below(bytes.count - 3)
                let value = Self.edges[below(Self.edges.count)]
                for i in 0..<4 { bytes[at + i] = UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32(i))) }
            case 3 where bytes.count >= 2:
                let at = below(bytes.count - 1)
                bytes[at] = UInt8(truncatingIfNeeded: Self.edges[below(Self.edges.count)])
            case 4:
                let at = below(bytes.count + 1)
                bytes.insert(contentsOf: repeatElement(0xFF, count: 1 + below(10)), at: at)
            case 5:
                let at = below(bytes.count + 1)
                bytes.insert(contentsOf: (0..<(1 + below(16))).map { _ in UInt8(truncatingIfNeeded: next()) }, at: at)
            case 6 where !bytes.isEmpty:
                let at = below(bytes.count)
                bytes.removeSubrange(at..<min(bytes.count, at + 1 + below(16)))
            case 7 where !bytes.isEmpty:
                bytes.removeLast(below(bytes.count) + 1)
            case 8 where !bytes.isEmpty:
                let at = below(bytes.count)
                let chunk = bytes[at..<min(bytes.count, at + 1 + below(32))]
                bytes.insert(contentsOf: chunk, at: below(bytes.count + 1))
            default:
                if !bytes.isEmpty { bytes[below(bytes.count)] = 0 }
            }
        }
        return bytes
    }
}
