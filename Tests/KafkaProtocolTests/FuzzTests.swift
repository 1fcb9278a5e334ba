import Foundation
import KafkaProtocol
import NIOCore
import Testing

/// Seeded fuzzing of everything that reads bytes a client chose: every generated message decoder
/// at every version, and the record-batch validator over plain and compressed batches. Each input
/// must be decoded or refused with an error; a crash or a hang is the failure, and the seed printed
/// first replays it (`ONCE_FUZZ_SEED=N`, with `ONCE_FUZZ_TRACE=1` to print each input before it
/// runs). `scripts/soak.sh` runs these longer with fresh seeds.
@Suite struct FuzzTests {
    private static let trace = ProcessInfo.processInfo.environment["ONCE_FUZZ_TRACE"] != nil

    private struct Target {
        var name: String
        var seed: [UInt8]
        var run: ([UInt8]) -> Void
    }

    private static func decoderTargets() -> [Target] {
        var targets: [Target] = []
        func add<M: Sampled>(_: M.Type) {
            for version in M.validVersions {
                var encoded = ByteBuffer()
                M.sample(version: version, unknownTags: true).encode(into: &encoded, version: version)
                targets.append(Target(name: "\(M.self) v\(version)", seed: Array(encoded.readableBytesView)) { bytes in
                    var buffer = ByteBuffer(bytes: bytes)
                    // Whatever decodes must encode again: a decoded value is a value the broker may echo.
                    guard let decoded = try? M(from: &buffer, version: version) else { return }
                    var out = ByteBuffer()
                    decoded.encode(into: &out, version: version)
                })
            }
        }
        for type in generatedMessageTypes { add(type) }
        return targets
    }

    private static func run(_ targets: [Target], label: String, seedDefault: UInt64, iterations defaultIterations: Int) {
        let seed = Fuzzer.seed(default: seedDefault)
        let iterations = Fuzzer.iterations(default: defaultIterations)
        print("fuzz \(label): seed \(seed), \(iterations) inputs (replay with ONCE_FUZZ_SEED=\(seed))")
        var fuzzer = Fuzzer(seed: seed)
        for iteration in 0..<iterations {
            let target = targets[fuzzer.below(targets.count)]
            let input = fuzzer.mutate(target.seed)
            if trace { print("fuzz \(label) #\(iteration) \(target.name): \(input.map { String(format: "%02x", $0) }.joined())") }
            target.run(input)
        }
    }

    @Test func decodersRefuseOrDecodeEveryMutatedMessage() {
        let targets = Self.decoderTargets()
        #expect(targets.count > 100, "every message at every version is a seed")
        Self.run(targets, label: "decoders", seedDefault: 0x0_11CE, iterations: 20_000)
    }

    /// Fixes the batch's length and CRC after a mutation half of the time, so mutations reach the
    /// records instead of all stopping at the checksum.
    private static func reseal(_ bytes: inout [UInt8]) {
        guard bytes.count >= RecordBatchHeader.size else { return }
        let length = UInt32(bytes.count - RecordBatchHeader.logOverhead)
        for i in 0..<4 { bytes[8 + i] = UInt8(truncatingIfNeeded: length >> (24 - 8 * UInt32(i))) }
        let crc = CRC32C.checksum(bytes[21...])
        for i in 0..<4 { bytes[17 + i] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * UInt32(i))) }
    }

    @Test func validatorRefusesOrAcceptsEveryMutatedBatch() {
        var seeds: [(String, [UInt8])] = [
            ("plain", Array(BatchFixtures.sampleBatch().readableBytesView)),
            ("kafka-python", RecordBatchTests.kafkaPythonBatch),
        ]
        for framing in TestCompression.Framing.allCases {
            seeds.append((framing.rawValue, Array(BatchFixtures.compressed(BatchFixtures.sampleRecords(), framing).readableBytesView)))
        }
        var coin = Fuzzer(seed: Fuzzer.seed(default: 0x0_BA7C) ^ 0xA5A5)
        let targets = seeds.map { name, seed in
            Target(name: name, seed: seed) { bytes in
                var bytes = bytes
                if coin.below(2) == 0 { Self.reseal(&bytes) }
                let buffer = ByteBuffer(bytes: bytes)
                let requireKeys = coin.below(2) == 0
                _ = try? RecordBatchValidator.validate(
                    buffer, allowMultipleBatches: true, requireKeys: requireKeys, maxUncompressedBytes: 1 << 20)
                _ = RecordBatchValidator.scanValidPrefix(buffer)
                _ = try? RecordBatch.decodeAll(from: buffer)
            }
        }
        Self.run(targets, label: "validator", seedDefault: 0x0_BA7C, iterations: 5_000)
    }
}
