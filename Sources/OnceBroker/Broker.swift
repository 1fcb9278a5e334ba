import KafkaProtocol
import Logging
import NIOCore
import OnceCore
import OnceStorage

/// The request-handling half of the broker: decodes a frame, runs the API's handler against storage
/// (and, in later layers, the OnceCore state machines) and encodes the response. It has no sockets;
/// `BrokerServer` feeds it frames, and tests can too.
public final class Broker: Sendable {
    let config: BrokerConfig
    let storage: any LogStorage
    let clusterId: String
    let logger: Logger
    let waiters = FetchWaiters()
    let metrics = BrokerMetrics()
    let producers: ProducerRegistry
    let transactions: TransactionService
    let groups: GroupCoordinator

    /// Reads the durable producer-id reservation; throws if storage cannot be read.
    public init(config: BrokerConfig, storage: any LogStorage, clusterId: String, logger: Logger) throws {
        self.config = config
        self.storage = storage
        self.clusterId = clusterId
        self.logger = logger
        self.producers = try ProducerRegistry(storage: storage, logger: logger)
        var transactionConfig = TransactionCoordinator.Config()
        transactionConfig.maxTimeoutMs = config.transactionMaxTimeoutMs
        transactionConfig.idExpirationMs = config.transactionalIdExpirationMs
        self.transactions = try TransactionService(
            storage: storage, producers: producers, waiters: waiters, config: transactionConfig,
            flushAlways: config.flushPolicy == .always, logger: logger)
        let groups = try GroupCoordinator(
            storage: storage, config: config.groupConfig, logger: logger, clock: { Clock.nowMilliseconds() })
        self.groups = groups
        // Markers in __consumer_offsets decide transactional offset commits; recovery may write some.
        transactions.setOffsetsMarkerWriter { producerId, commit, write in
            try groups.writeTransactionMarker(producerId: producerId, commit: commit, write: write)
        }
        try transactions.recover(now: Clock.nowMilliseconds())
    }

    /// Snapshots the transaction coordinator and the consumer groups (each then drops the internal
    /// log segments its snapshot replaced); failures are logged, the logs still hold everything.
    func snapshotCoordinators() {
        do {
            try transactions.snapshot()
            try groups.snapshot()
        } catch {
            logger.warning("coordinator snapshot failed", metadata: ["error": "\(error)"])
        }
    }

    /// Why a connection is closed instead of answered: Kafka closes the connection on a request it
    /// cannot parse or an API/version it does not serve (ApiVersions excepted).
    struct ConnectionError: Error, CustomStringConvertible {
        var description: String
    }

    /// Handles one request frame (without its size prefix). Returns the framed response, or nil when
    /// the request expects none (Produce with acks=0). A thrown error closes the connection.
    func handle(frame: ByteBuffer, eventLoop: any EventLoop) throws -> EventLoopFuture<ByteBuffer?> {
        var frame = frame
        guard let rawKey = frame.getInteger(at: frame.readerIndex, as: Int16.self),
            let version = frame.getInteger(at: frame.readerIndex + 2, as: Int16.self)
        else { throw ConnectionError(description: "frame of \(frame.readableBytes) bytes is too short for a request header") }
        guard let api = ApiKey(rawValue: rawKey), let supported = SupportedApis.range(of: api) else {
            throw ConnectionError(description: "unsupported api key \(rawKey)")
        }
        let header = try RequestHeader(from: &frame, version: KafkaHeaderVersions.request(apiKey: rawKey, apiVersion: version))
        metrics.requestReceived(api, bytes: frame.readableBytes)
        let request = Request(header: header, api: api, version: version, eventLoop: eventLoop)
        guard supported.contains(version) else {
            guard api == .apiVersions else {
                throw ConnectionError(description: "\(api.name) v\(version) is not supported (\(supported))")
            }
            // KIP-511: answer with v0 and our ranges so the client can retry with a version we know.
            var response = apiVersionsResponse(version: 0)
            response.errorCode = ErrorCode.unsupportedVersion.rawValue
            return eventLoop.makeSucceededFuture(encode(response, for: request, responseVersion: 0))
        }
        switch api {
        case .apiVersions:
            return respond(request, apiVersions(try ApiVersionsRequest(from: &frame, version: version), request))
        case .metadata:
            return respond(request, metadata(try MetadataRequest(from: &frame, version: version), request))
        case .describeCluster:
            return respond(request, describeCluster(request))
        case .createTopics:
            return createTopics(try CreateTopicsRequest(from: &frame, version: version), request)
                .map { self.encode($0, for: request) }
        case .deleteTopics:
            return deleteTopics(try DeleteTopicsRequest(from: &frame, version: version), request)
                .map { self.encode($0, for: request) }
        case .describeConfigs:
            return respond(request, describeConfigs(try DescribeConfigsRequest(from: &frame, version: version), request))
        case .listOffsets:
            return respond(request, listOffsets(try ListOffsetsRequest(from: &frame, version: version), request))
        case .produce:
            let produce = try ProduceRequest(from: &frame, version: version)
            let response = self.produce(produce, request)
            if produce.acks == 0 { return eventLoop.makeSucceededFuture(nil) }
            return response.map { self.encode($0, for: request) }
        case .initProducerId:
            let req = try InitProducerIdRequest(from: &frame, version: version)
            if let transactionalId = req.transactionalId, !transactionalId.isEmpty {
                return initTransactionalProducerId(req, request, transactionalId: transactionalId)
                    .map { self.encode($0, for: request) }
            }
            return respond(request, initProducerId(req, request))
        case .describeProducers:
            return respond(request, describeProducers(try DescribeProducersRequest(from: &frame, version: version), request))
        case .addPartitionsToTxn:
            return addPartitionsToTxn(try AddPartitionsToTxnRequest(from: &frame, version: version), request)
                .map { self.encode($0, for: request) }
        case .addOffsetsToTxn:
            return addOffsetsToTxn(try AddOffsetsToTxnRequest(from: &frame, version: version), request)
                .map { self.encode($0, for: request) }
        case .endTxn:
            return endTxn(try EndTxnRequest(from: &frame, version: version), request).map { self.encode($0, for: request) }
        case .txnOffsetCommit:
            return respond(request, txnOffsetCommit(try TxnOffsetCommitRequest(from: &frame, version: version), request))
        case .describeTransactions:
            return respond(request, describeTransactions(try DescribeTransactionsRequest(from: &frame, version: version), request))
        case .listTransactions:
            return respond(request, listTransactions(try ListTransactionsRequest(from: &frame, version: version), request))
        case .fetch:
            return fetch(try FetchRequest(from: &frame, version: version), request).map { self.encode($0, for: request) }
        case .findCoordinator:
            return respond(request, findCoordinator(try FindCoordinatorRequest(from: &frame, version: version), request))
        case .joinGroup:
            return joinGroup(try JoinGroupRequest(from: &frame, version: version), request).map { self.encode($0, for: request) }
        case .syncGroup:
            return syncGroup(try SyncGroupRequest(from: &frame, version: version), request).map { self.encode($0, for: request) }
        case .heartbeat:
            return respond(request, heartbeat(try HeartbeatRequest(from: &frame, version: version), request))
        case .leaveGroup:
            return respond(request, leaveGroup(try LeaveGroupRequest(from: &frame, version: version), request))
        case .offsetCommit:
            return respond(request, offsetCommit(try OffsetCommitRequest(from: &frame, version: version), request))
        case .offsetFetch:
            return respond(request, offsetFetch(try OffsetFetchRequest(from: &frame, version: version), request))
        case .offsetDelete:
            return respond(request, offsetDelete(try OffsetDeleteRequest(from: &frame, version: version), request))
        case .listGroups:
            return respond(request, listGroups(try ListGroupsRequest(from: &frame, version: version), request))
        case .describeGroups:
            return respond(request, describeGroups(try DescribeGroupsRequest(from: &frame, version: version), request))
        case .deleteGroups:
            return respond(request, deleteGroups(try DeleteGroupsRequest(from: &frame, version: version), request))
        default:
            throw ConnectionError(description: "\(api.name) has no handler")
        }
    }

    private func respond(_ request: Request, _ response: some KafkaResponse) -> EventLoopFuture<ByteBuffer?> {
        request.eventLoop.makeSucceededFuture(encode(response, for: request))
    }

    /// Frames a response: size, response header, body.
    func encode(_ response: some KafkaResponse, for request: Request, responseVersion: Int16? = nil) -> ByteBuffer? {
        let version = responseVersion ?? request.version
        var buffer = ByteBufferAllocator().buffer(capacity: 256)
        buffer.writeInteger(Int32(0))
        var header = ResponseHeader()
        header.correlationId = request.header.correlationId
        header.encode(into: &buffer, version: KafkaHeaderVersions.response(apiKey: request.api.rawValue, apiVersion: version))
        response.encode(into: &buffer, version: version)
        buffer.setInteger(Int32(buffer.readableBytes - 4), at: buffer.readerIndex)
        metrics.responseSent(request.api, bytes: buffer.readableBytes)
        return buffer
    }
}

/// What a handler knows about the request it serves.
struct Request: Sendable {
    var header: RequestHeader
    var api: ApiKey
    var version: Int16
    var eventLoop: any EventLoop
}

