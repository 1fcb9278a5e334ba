import Foundation
import KafkaProtocol
import Logging
import NIOCore
import OnceStorage
import Testing

@testable import OnceBroker

/// Fetch answers whose record sets stay in segment files until sendfile: spliced into the encoded
/// response, they must give exactly the bytes an in-memory answer would, in every version.
@Suite("Fetch from files")
struct FetchFromFilesTests {
    static func request(_ topics: [(String, [Int32])], maxBytes: Int32 = 1 << 20) -> FetchRequest {
        var req = FetchRequest()
        req.maxWaitMs = 0
        req.minBytes = 1
        req.maxBytes = maxBytes
        req.topics = topics.map { name, partitions in
            var t = FetchRequest.FetchTopic()
            t.topic = name
            t.partitions = partitions.map {
                var p = FetchRequest.FetchPartition()
                p.partition = $0
                p.fetchOffset = 0
                p.partitionMaxBytes = 1 << 20
                return p
            }
            return t
        }
        return req
    }

    @Test(arguments: [Int16(4), 11, 12])
    func splicedResponsesCarryTheStoredBatches(version: Int16) async throws {
        let dir = NSTemporaryDirectory() + "once-fetch-files-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let storage = try FileLogStorage(directory: dir, logger: Logger(label: "test"))
        defer { try? storage.close() }
        var config = BrokerConfig()
        config.dataDirectory = dir
        let broker = try Broker(config: config, storage: storage, clusterId: "c", logger: Logger(label: "test"))
        try storage.createTopic(name: "a", partitions: 2, configs: [:])
        try storage.createTopic(name: "b", partitions: 1, configs: [:])
        // Partition a-1 stays empty: its answer carries no file range between two that do.
        for (topic, partition, count) in [("a", Int32(0), 3), ("b", Int32(0), 200)] {
            let log = try #require(storage.partition(topic: topic, partition: partition))
            for i in 0..<count { _ = try log.append(BrokerHarness.batch(["\(topic)\(partition)-\(i)"])) }
        }
        let frame = BrokerHarness.frame(Self.request([("a", [0, 1]), ("b", [0])]), version: version)
        let served = try #require(try await broker.serve(frame: frame, eventLoop: BrokerHarness.group.next()).get())
        let fileParts = served.parts.filter { if case .file = $0 { true } else { false } }
        #expect(fileParts.count == 2)

        var bytes = try served.materialized()
        #expect(Int(bytes.readInteger(as: Int32.self)!) == bytes.readableBytes)
        _ = try ResponseHeader(from: &bytes, version: KafkaHeaderVersions.response(apiKey: ApiKey.fetch.rawValue, apiVersion: version))
        let response = try FetchResponse(from: &bytes, version: version)
        #expect(bytes.readableBytes == 0)
        let a = response.responses[0].partitions
        let b = response.responses[1].partitions
        #expect(try BrokerHarness.values(a[0].records).map(\.value) == (0..<3).map { "a0-\($0)" })
        #expect(a[1].records?.readableBytes == 0)
        #expect(try BrokerHarness.values(b[0].records).map(\.value) == (0..<200).map { "b0-\($0)" })
        let stored = try #require(storage.partition(topic: "b", partition: 0)).read(from: 0, maxBytes: 1 << 20, limitOffset: .max)
        #expect(b[0].records == stored)
    }

    @Test func aFileRangeStillReadsAfterItsSegmentIsDeleted() throws {
        let dir = NSTemporaryDirectory() + "once-fetch-files-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let storage = try FileLogStorage(directory: dir, maxOpenFiles: 1, logger: Logger(label: "test"))
        defer { try? storage.close() }
        let batch = BrokerHarness.batch(["x"])
        try storage.createTopic(name: "t", partitions: 1, configs: ["segment.bytes": "\(batch.readableBytes * 2)"])
        let log = try #require(storage.partition(topic: "t", partition: 0))
        for _ in 0..<5 { _ = try log.append(batch) }
        let located = try #require(try log.locate(from: 0, maxBytes: 1 << 20, limitOffset: .max))
        #expect(located.length == batch.readableBytes * 2)
        #expect(try log.deleteSegments(below: 4) == 2)
        #expect(try BrokerHarness.values(located.read()).map(\.offset) == [0, 1])
    }
}
