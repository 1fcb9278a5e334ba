import Foundation
import KafkaProtocol
import NIOCore
import OnceCore
import Testing

/// A bit-at-a-time CRC-32C written from the polynomial alone, so tests do not trust the code they test.
func referenceCRC32C<S: Sequence<UInt8>>(_ bytes: S) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 {
            crc = crc & 1 == 1 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
        }
    }
    return ~crc
}


@Suite struct CRC32CTests {
    static let vectors: [(String, [UInt8], UInt32)] = [
        ("32 zero bytes", [UInt8](repeating: 0, count: 32), 0x8A91_36AA),
        ("32 0xFF bytes", [UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
        ("0..31 ascending", (0..<32).map { UInt8($0) }, 0x46DD_794E),
        ("31..0 descending", (0..<32).reversed().map { UInt8($0) }, 0x113F_DB5C),
        ("123456789", Array("123456789".utf8), 0xE306_9283),
    ]

    @Test(arguments: vectors.indices)
    func publishedVectors(_ i: Int) {
        let (name, bytes, expected) = Self.vectors[i]
        #expect(CRC32C.checksum(bytes) == expected, "\(name)")
        #expect(bytes.withUnsafeBytes { CRC32C.softwareChecksum($0) } == expected, "\(name)")
        #expect(referenceCRC32C(bytes) == expected, "\(name)")
    }

    @Test func emptyInputIsTheSeed() {
        #expect(CRC32C.checksum([UInt8]()) == 0)
        #expect(CRC32C.checksum([UInt8](), seed: 0x1234_5678) == 0x1234_5678)
    }

    @Test func checksumsChainAcrossPieces() {
        let bytes = Array("The quick brown fox jumps over the lazy dog".utf8)
        let whole = CRC32C.checksum(bytes)
        for split in 0...bytes.count {
            let first = CRC32C.checksum(bytes[..<split])
            #expect(CRC32C.checksum(bytes[split...], seed: first) == whole)
        }
    }

    @Test func byteBufferUsesOnlyReadableBytes() {
        var buffer = ByteBuffer(bytes: [9, 9, 9] + Array("123456789".utf8))
        buffer.moveReaderIndex(forwardBy: 3)
        #expect(CRC32C.checksum(buffer) == 0xE306_9283)
    }

    @Test func nonContiguousCollections() {
        let bytes = Array("123456789".utf8)
        #expect(CRC32C.checksum(bytes.lazy.map { $0 }) == 0xE306_9283)
    }

    /// Both paths against each other and the reference, over lengths that cross every 8-byte tail
    /// and start addresses of every alignment.
    @Test func hardwareMatchesSoftwareOnRandomInput() {
        var rng = SplitMix64(seed: 0xC0FFEE)
        let pool = (0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) }
        pool.withUnsafeBytes { all in
            for _ in 0..<500 {
                let start = Int.random(in: 0..<16, using: &rng)
                let length = Int.random(in: 0..<(all.count - start), using: &rng)
                let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                let seed = UInt32.random(in: 0...UInt32.max, using: &rng)
                let hw = CRC32C.checksum(slice, seed: seed)
                #expect(hw == CRC32C.softwareChecksum(slice, seed: seed), "start \(start) length \(length)")
            }
            for length in 0..<64 {
                for start in 0..<8 {
                    let slice = UnsafeRawBufferPointer(rebasing: all[start..<(start + length)])
                    #expect(CRC32C.checksum(slice) == referenceCRC32C(slice), "start \(start) length \(length)")
                    #expect(CRC32C.softwareChecksum(slice) == referenceCRC32C(slice), "start \(start) length \(length)")
                }
            }
        }
    }

    #if os(Linux) && (arch(x86_64) || arch(arm64))
    /// The hardware path must be the one in use wherever the CPU has the instruction; otherwise the
    /// broker would silently run several times slower.
    @Test func usesHardwareWhenTheCPUHasIt() throws {
        let cpuinfo = try String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)
        #if arch(x86_64)
        let flag = "sse4_2"
        #else
        let flag = "crc32"
        #endif
        let hasInstruction = cpuinfo.split(separator: "\n").contains { line in
            (line.hasPrefix("flags") || line.hasPrefix("Features")) && line.split(separator: " ").contains(Substring(flag))
        }
        #expect(CRC32C.isHardwareAccelerated == hasInstruction)
    }
    #endif
}
