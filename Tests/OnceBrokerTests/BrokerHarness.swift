import KafkaProtocol
import Logging
import NIOCore
import NIOPosix
@testable import OnceBroker
import OnceStorage

/// Drives `Broker.handle` with encoded frames, as a connection would, against the memory engine.
/// Requests go through the same header/version/encode path a real client's bytes do.
struct BrokerHarness {
    let broker: Broker
    let storage: MemoryLogStorage
    static let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    var eventLoop: any EventLoop { Self.group.next() }

    init(storage: MemoryLogStorage = MemoryLogStorage(), configure: (inout BrokerConfig) -> Void = { _ in }) {
        var config = BrokerConfig()
        config.storage = .memory
        configure(&config)
        self.storage = storage
        broker = try! Broker(config: config, storage: storage, clusterId: "test-cluster", logger: Logger(label: "test"))
    }

    /// Frames a request body with its header, the way a client does (without the size prefix).
    static func frame<R: KafkaRequest>(_ request: R, version: Int16, correlationId: Int32 = 7) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        var header = RequestHeader()
        header.requestApiKey = R.apiKey
        header.requestApiVersion = version
        header.correlationId = correlationId
        header.clientId = "harness"
        header.encode(into: &buffer, version: KafkaHeaderVersions.request(apiKey: R.apiKey, apiVersion: version))
        request.encode(into: &buffer, version: version)
        return buffer
    }

    /// Sends a request and decodes its response; nil when the broker sends none.
    func send<R: KafkaRequest>(_ request: R, version: Int16) async throws -> R.Response? {
        let future = try broker.handle(frame: Self.frame(request, version: version), eventLoop: eventLoop)
        guard var response = try await future.get() else { return nil }
        let size = response.readInteger(as: Int32.self)
        precondition(Int(size!) == response.readableBytes, "size prefix matches the frame")
        let header = try ResponseHeader(
            from: &response, version: KafkaHeaderVersions.response(apiKey: R.apiKey, apiVersion: version))
        precondition(header.correlationId == 7)
        let decoded = try R.Response(from: &response, version: version)
        precondition(response.readableBytes == 0, "the response body was decoded completely")
        return decoded
    }

    // MARK: Conveniences

    func produce(
        topic: String, partition: Int32 = 0, values: [String], acks: Int16 = -1, timestamp: Int64 = 1_700_000_000_000,
        version: Int16 = 9
    ) async throws -> ProduceResponse.PartitionProduceResponse {
        let batch = Self.batch(values, timestamp: timestamp)
        return try await produce(topic: topic, partition: partition, records: batch, acks: acks, version: version)!
    }

    func produce(
        topic: String, partition: Int32 = 0, records: ByteBuffer?, acks: Int16 = -1, version: Int16 = 9
    ) async throws -> ProduceResponse.PartitionProduceResponse? {
        var p = ProduceRequest.PartitionProduceData()
        p.index = partition
        p.records = records
        var t = ProduceRequest.TopicProduceData()
        t.name = topic
        t.partitionData = [p]
        var req = ProduceRequest()
        req.acks = acks
        req.timeoutMs = 5000
        req.topicData = [t]
        guard let response = try await send(req, version: version) else { return nil }
        return response.responses[0].partitionResponses[0]
    }

    static func batch(_ values: [String], timestamp: Int64 = 1_700_000_000_000, keys: [String]? = nil) -> ByteBuffer {
        let records = values.enumerated().map { i, v in
            Record(
                timestampDelta: Int64(i), offsetDelta: Int32(i), key: keys.map { Array($0[i].utf8) },
                value: Array(v.utf8))
        }
        return RecordBatch.encode(records: records, baseTimestamp: timestamp)
    }

    /// A batch as an idempotent producer sends it.
    static func idempotentBatch(
        _ values: [String], producerId: Int64, epoch: Int16 = 0, sequence: Int32, transactional: Bool = false
    ) -> ByteBuffer {
        let records = values.enumerated().map { i, v in Record(offsetDelta: Int32(i), key: nil, value: Array(v.utf8)) }
        return RecordBatch.encode(
            records: records, baseTimestamp: 1_700_000_000_000, producerId: producerId, producerEpoch: epoch,
            baseSequence: sequence, isTransactional: transactional)
    }

    func initProducerId(transactionalId: String? = nil) async throws -> InitProducerIdResponse {
        var req = InitProducerIdRequest()
        req.transactionalId = transactionalId
        req.transactionTimeoutMs = 60_000
        return try await send(req, version: 4)!
    }

    func fetch(
        topic: String, partition: Int32 = 0, offset: Int64, maxWaitMs: Int32 = 0, minBytes: Int32 = 1,
        maxBytes: Int32 = 1 << 20, isolation: Int8 = 0, version: Int16 = 12
    ) async throws -> FetchResponse.PartitionData {
        var p = FetchRequest.FetchPartition()
        p.partition = partition
        p.fetchOffset = offset
        p.partitionMaxBytes = maxBytes
        var t = FetchRequest.FetchTopic()
        t.topic = topic
        t.partitions = [p]
        var req = FetchRequest()
        req.maxWaitMs = maxWaitMs
        req.minBytes = minBytes
        req.maxBytes = maxBytes
        req.isolationLevel = isolation
        req.topics = [t]
        let response = try await send(req, version: version)!
        return response.responses[0].partitions[0]
    }

    /// The values of every record in a fetched record set.
    static func values(_ records: ByteBuffer?) throws -> [(offset: Int64, value: String)] {
        guard let records else { return [] }
        return try RecordBatch.decodeAll(from: records).filter { !$0.header.isControl }.flatMap { batch in
            batch.records.map { (batch.offset(of: $0), String(decoding: $0.value ?? [], as: UTF8.self)) }
        }
    }
}
