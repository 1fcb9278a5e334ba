import Foundation
import KafkaProtocol
import NIOCore
import OnceCore
@testable import OnceBroker
import Testing

/// Mutated requests of every API and version the broker serves, fed to `Broker.handle` as a
/// connection would: each must be answered, or refused with an error that closes the connection;
/// a crash is the failure. Seeded like KafkaProtocolTests' FuzzTests (`ONCE_FUZZ_SEED`,
/// `ONCE_FUZZ_ITERATIONS`), whose mutator covers the decoders alone.
@Suite("Handler fuzzing")
struct HandlerFuzzTests {
    static let served: [any KafkaRequest.Type] = [
        ProduceRequest.self, FetchRequest.self, ListOffsetsRequest.self, MetadataRequest.self,
        ApiVersionsRequest.self, CreateTopicsRequest.self, DeleteTopicsRequest.self, DescribeConfigsRequest.self,
        DescribeClusterRequest.self, FindCoordinatorRequest.self, JoinGroupRequest.self, SyncGroupRequest.self,
        HeartbeatRequest.self, LeaveGroupRequest.self, OffsetCommitRequest.self, OffsetFetchRequest.self,
        OffsetDeleteRequest.self, ListGroupsRequest.self, DescribeGroupsRequest.self, DeleteGroupsRequest.self,
        InitProducerIdRequest.self, DescribeProducersRequest.self, AddPartitionsToTxnRequest.self,
        AddOffsetsToTxnRequest.self, EndTxnRequest.self, TxnOffsetCommitRequest.self,
        DescribeTransactionsRequest.self, ListTransactionsRequest.self,
    ]


    /// A frame (header, then body) of each served API at each served version, with every body field
    /// at its default; the header length is kept so mutations land in the body.
    static func seeds() -> [(frame: [UInt8], headerLength: Int)] {
        var seeds: [(frame: [UInt8], headerLength: Int)] = []
        func add<R: KafkaRequest>(_: R.Type) {
            guard let api = ApiKey(rawValue: R.apiKey), let versions = SupportedApis.range(of: api) else { return }
            for version in versions {
                let frame = BrokerHarness.frame(R(), version: version)
                var header = ByteBuffer()
                var h = RequestHeader()
                h.requestApiKey = R.apiKey
                h.requestApiVersion = version
                h.correlationId = 7
                h.clientId = "harness"
                h.encode(into: &header, version: KafkaHeaderVersions.request(apiKey: R.apiKey, apiVersion: version))
                seeds.append((Array(frame.readableBytesView), header.readableBytes))
            }
        }
        for type in served { add(type) }
        return seeds
    }

    @Test("every served API survives mutated bodies")
    func mutatedBodies() throws {
        let seeds = Self.seeds()
        #expect(seeds.count > 100)
        let h = BrokerHarness()
        try h.storage.createTopic(name: "t", partitions: 2, configs: [:])
        let seed = ProcessInfo.processInfo.environment["ONCE_FUZZ_SEED"].flatMap { UInt64($0) } ?? 0x0_4A2D
        let iterations = ProcessInfo.processInfo.environment["ONCE_FUZZ_ITERATIONS"].flatMap { Int($0) } ?? 5_000
        print("fuzz handlers: seed \(seed), \(iterations) requests (replay with ONCE_FUZZ_SEED=\(seed))")
        var random = SplitMix64(seed: seed)
        var answered = 0
        for _ in 0..<iterations {
            let (frame, headerLength) = seeds[random.below(seeds.count)]
            var bytes = frame
            for _ in 0...random.below(3) {
                let bodyStart = min(headerLength, bytes.count)
                switch random.below(4) {
                case 0 where bytes.count > bodyStart:
                    bytes[bodyStart + random.below(bytes.count - bodyStart)] = UInt8(truncatingIfNeeded: random.next())
                case 1:
                    let at = bodyStart + random.below(bytes.count - bodyStart + 1)
                    bytes.insert(contentsOf: (0..<(1 + random.below(12))).map { _ in UInt8(truncatingIfNeeded: random.next()) }, at: at)
                case 2 where bytes.count > bodyStart:
                    bytes.removeLast(1 + random.below(bytes.count - bodyStart))
                default:
                    let at = bodyStart + random.below(bytes.count - bodyStart + 1)
                    bytes.insert(contentsOf: [0x00, 0x00, 0x00, 0x01], at: at)
                }
            }
            // A thrown error is the broker closing the connection, as it should for garbage.
            if (try? h.broker.handle(frame: ByteBuffer(bytes: bytes), eventLoop: h.eventLoop)) != nil { answered += 1 }
        }
        print("fuzz handlers: \(answered) of \(iterations) requests decoded and handled")
        // Mutations that left a body decodable must reach the handlers, or this proved little.
        #expect(answered > iterations / 20)
    }
}
