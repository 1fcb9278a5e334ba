import KafkaProtocol
import Logging
import NIOCore
import NIOPosix
import OnceCore
import OnceCrypto
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
    let dynamicConfigs: DynamicConfigStore
    /// The stored ACLs and the authorizer compiled from them; nil when `--authorizer` is off.
    let acls: AclStore?
    /// The injected clock, random source and task executor (see `BrokerRuntime`).
    let runtime: BrokerRuntime
    var clock: @Sendable () -> Int64 { runtime.clock }
    /// Paces auto-creation (`autoCreatePartitionsPerSecond`), so a client naming endless topics
    /// cannot fill the disk and the directory table.
    let autoCreateBudget: AutoCreateLimiter
    let scramCredentials: ScramCredentialStore
    let cryptography = LibCrypto()
    let authenticationFailures: AuthenticationFailureLimiter
    let advertisedListeners: AdvertisedListeners
    /// Who is alive and who leads each partition; the file and memory engines lead everything alone.
    let cluster: any ClusterView
    /// The other brokers, for partitions and coordinators this broker does not hold; nil when it
    /// holds everything.
    let peers: TransactionPeers?
    /// The connections to the other brokers this broker opened, which `BrokerService` closes at
    /// shutdown; nil when it needs none or its runtime brought the transport.
    let interBrokerClient: InterBrokerClient?

    /// Reads the durable producer-id reservation; throws if storage cannot be read.
    public init(
        config: BrokerConfig, storage: any LogStorage, clusterId: String, logger: Logger,
        runtime: BrokerRuntime = BrokerRuntime(),
        cluster: (any ClusterView)? = nil
    ) throws {
        self.runtime = runtime
        let clock = runtime.clock
        self.config = config
        self.storage = storage
        self.clusterId = clusterId
        self.logger = logger
        let advertisedListeners = AdvertisedListeners(config.listeners)
        self.advertisedListeners = advertisedListeners
        self.cluster = cluster ?? SingleBrokerCluster(
            nodeId: config.nodeId, rack: config.rack, listeners: config.listeners, addresses: advertisedListeners)
        self.autoCreateBudget = AutoCreateLimiter(
            partitionsPerSecond: config.autoCreatePartitionsPerSecond, clock: clock)
        self.producers = try ProducerRegistry(storage: storage, logger: logger)
        self.cluster.addLeadershipListener(producers)
        self.dynamicConfigs = try DynamicConfigStore(storage: storage)
        if config.authorizerEnabled {
            let acls = try AclStore(
                storage: storage, superUsers: Set(config.superUsers.map(\.description)),
                allowEveryoneIfNoAclFound: config.allowEveryoneIfNoAclFound)
            // Without either, nobody could ever be granted the right to add the first ACL.
            guard !config.superUsers.isEmpty || !acls.current.bindings.isEmpty else {
                throw StartupError(description: "--authorizer on needs at least one --super-users principal or a stored ACL")
            }
            self.acls = acls
        } else {
            self.acls = nil
        }
        self.scramCredentials = try ScramCredentialStore(storage: storage)
        self.authenticationFailures = AuthenticationFailureLimiter(maxFailures: config.sasl.maxFailedAuthenticationsPerMinute)
        try scramCredentials.storeBootstrap(config.sasl.bootstrapCredentials, hashing: cryptography)
        var transactionConfig = TransactionCoordinator.Config()
        transactionConfig.maxTimeoutMs = config.transactionMaxTimeoutMs
        transactionConfig.idExpirationMs = config.transactionalIdExpirationMs
        // A cluster whose leadership moves has partitions led elsewhere: markers and KIP-890
        // checks for those go to the other brokers over the inter-broker listener.
        if self.cluster.announcesLeadership, let transport = runtime.interBroker {
            self.interBrokerClient = nil
            self.peers = TransactionPeers(transport: transport, cluster: self.cluster, logger: logger)
        } else if self.cluster.announcesLeadership, let listener = config.interBrokerListener {
            let client = InterBrokerClient(
                settings: InterBrokerClient.Settings(
                    listenerName: listener.name, clientId: "once-broker-\(config.nodeId)",
                    requestTimeout: .milliseconds(config.interBrokerRequestTimeoutMs),
                    sasl: config.interBrokerSasl.map {
                        InterBrokerSasl(mechanism: $0.mechanism, username: $0.username, password: $0.password)
                    },
                    tls: try listener.securityProtocol.usesTLS ? InterBrokerTLS(config) : nil),
                cluster: self.cluster, group: MultiThreadedEventLoopGroup.singleton)
            self.interBrokerClient = client
            self.peers = TransactionPeers(transport: client, cluster: self.cluster, logger: logger)
        } else {
            self.interBrokerClient = nil
            self.peers = nil
        }
        self.transactions = try TransactionService(
            storage: storage, producers: producers, waiters: waiters, config: transactionConfig,
            flushAlways: config.flushPolicy.acknowledgesOnlyDurableWrites, logger: logger, clock: clock,
            servesAtStart: !self.cluster.announcesLeadership, cluster: self.cluster, peers: peers,
            retryBackoff: .init(base: config.transactionMarkerRetryBackoffMs, max: config.transactionMarkerRetryBackoffMaxMs),
            runtime: runtime)
        let groups = try GroupCoordinator(
            storage: storage, config: config.groupConfig, logger: logger, clock: clock,
            servesAtStart: !self.cluster.announcesLeadership)
        self.groups = groups
        // Markers in __consumer_offsets decide transactional offset commits; recovery may write some.
        transactions.setOffsetsMarkerWriter { producerId, commit, write in
            try groups.writeTransactionMarker(producerId: producerId, commit: commit, write: write)
        }
        if self.cluster.announcesLeadership {
            // Groups first: recovery writes markers into __consumer_offsets through them, and
            // partitions are announced in name order, which also puts __consumer_offsets first.
            self.cluster.addLeadershipListener(groups)
            self.cluster.addLeadershipListener(transactions)
        } else {
            try transactions.recover(now: clock())
        }
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

    /// `serve` with the response in one buffer, for callers that write bytes, not files (tests).
    func handle(
        frame: ByteBuffer, eventLoop: any EventLoop, session: ConnectionSession = .plaintext()
    ) throws -> EventLoopFuture<ByteBuffer?> {
        try serve(frame: frame, eventLoop: eventLoop, session: session).flatMapThrowing { try $0?.materialized() }
    }

    /// Handles one request frame (without its size prefix). Returns the framed response, or nil when
    /// the request expects none (Produce with acks=0). A thrown error closes the connection.
    func serve(
        frame: ByteBuffer, eventLoop: any EventLoop, session: ConnectionSession = .plaintext()
    ) throws -> EventLoopFuture<OutboundResponse?> {
        // A bare SASL token (after SaslHandshake v0) is no request: no header, no metrics.
        if let answer = rawSaslToken(frame, session: session, eventLoop: eventLoop) { return answer }
        let started = NIODeadline.now()
        let answer = try route(frame: frame, eventLoop: eventLoop, session: session)
        if let api = frame.getInteger(at: frame.readerIndex, as: Int16.self).flatMap(ApiKey.init(rawValue:)) {
            answer.whenSuccess { _ in self.metrics.requestCompleted(api, since: started) }
        }
        return answer
    }

    private func route(
        frame: ByteBuffer, eventLoop: any EventLoop, session: ConnectionSession
    ) throws -> EventLoopFuture<OutboundResponse?> {
        var frame = frame
        guard let rawKey = frame.getInteger(at: frame.readerIndex, as: Int16.self),
            let version = frame.getInteger(at: frame.readerIndex + 2, as: Int16.self)
        else { throw ConnectionError(description: "frame of \(frame.readableBytes) bytes is too short for a request header") }
        guard let api = ApiKey(rawValue: rawKey), let supported = served(api) else {
            throw ConnectionError(description: "unsupported api key \(rawKey)")
        }
        try checkSaslGate(api, session)
        let header = try RequestHeader(from: &frame, version: KafkaHeaderVersions.request(apiKey: rawKey, apiVersion: version))
        metrics.requestReceived(api, bytes: frame.readableBytes)
        let request = Request(header: header, api: api, version: version, eventLoop: eventLoop, session: session)
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
            return respond(request, describeCluster(try DescribeClusterRequest(from: &frame, version: version), request))
        case .createTopics:
            return createTopics(try CreateTopicsRequest(from: &frame, version: version), request)
                .map { self.encode($0, for: request) }
        case .deleteTopics:
            return deleteTopics(try DeleteTopicsRequest(from: &frame, version: version), request)
                .map { self.encode($0, for: request) }
        case .describeConfigs:
            return respond(request, describeConfigs(try DescribeConfigsRequest(from: &frame, version: version), request))
        case .alterConfigs:
            return respond(request, alterConfigs(try AlterConfigsRequest(from: &frame, version: version), request))
        case .incrementalAlterConfigs:
            return respond(
                request, incrementalAlterConfigs(try IncrementalAlterConfigsRequest(from: &frame, version: version), request))
        case .createPartitions:
            return createPartitions(try CreatePartitionsRequest(from: &frame, version: version), request)
                .map { self.encode($0, for: request) }
        case .deleteRecords:
            return respond(request, deleteRecords(try DeleteRecordsRequest(from: &frame, version: version), request))
        case .describeLogDirs:
            return respond(request, describeLogDirs(try DescribeLogDirsRequest(from: &frame, version: version), request))
        case .listOffsets:
            return respond(request, listOffsets(try ListOffsetsRequest(from: &frame, version: version), request))
        case .offsetForLeaderEpoch:
            return respond(
                request, offsetForLeaderEpoch(try OffsetForLeaderEpochRequest(from: &frame, version: version), request))
        case .produce:
            let produce = try ProduceRequest(from: &frame, version: version)
            let response = self.produce(produce, request)
            if produce.acks == 0 {
                // Unanswered, but as Kafka does, a failed acks=0 produce closes the connection:
                // the only way such a producer can learn that its writes are being refused.
                return response.map { answer in
                    let failed = answer.responses.contains { $0.partitionResponses.contains { $0.errorCode != 0 } }
                    return failed ? OutboundResponse(parts: []).closing(if: true) : nil
                }
            }
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
            return afterGroupWrites(
                request, txnOffsetCommit(try TxnOffsetCommitRequest(from: &frame, version: version), request)
                    .map { self.encode($0, for: request) })
        case .describeTransactions:
            return respond(request, describeTransactions(try DescribeTransactionsRequest(from: &frame, version: version), request))
        case .listTransactions:
            return respond(request, listTransactions(try ListTransactionsRequest(from: &frame, version: version), request))
        case .writeTxnMarkers:
            return writeTxnMarkers(try WriteTxnMarkersRequest(from: &frame, version: version), request)
                .map { self.encode($0, for: request) }
        case .fetch:
            return fetchStreaming(try FetchRequest(from: &frame, version: version), request)
        case .findCoordinator:
            return respond(request, findCoordinator(try FindCoordinatorRequest(from: &frame, version: version), request))
        case .joinGroup:
            return afterGroupWrites(
                request, joinGroup(try JoinGroupRequest(from: &frame, version: version), request).map { self.encode($0, for: request) })
        case .syncGroup:
            return afterGroupWrites(
                request, syncGroup(try SyncGroupRequest(from: &frame, version: version), request).map { self.encode($0, for: request) })
        case .heartbeat:
            return respond(request, heartbeat(try HeartbeatRequest(from: &frame, version: version), request))
        case .leaveGroup:
            return afterGroupWrites(request, respond(request, leaveGroup(try LeaveGroupRequest(from: &frame, version: version), request)))
        case .offsetCommit:
            return afterGroupWrites(request, respond(request, offsetCommit(try OffsetCommitRequest(from: &frame, version: version), request)))
        case .offsetFetch:
            return respond(request, offsetFetch(try OffsetFetchRequest(from: &frame, version: version), request))
        case .offsetDelete:
            return afterGroupWrites(request, respond(request, offsetDelete(try OffsetDeleteRequest(from: &frame, version: version), request)))
        case .listGroups:
            return respond(request, listGroups(try ListGroupsRequest(from: &frame, version: version), request))
        case .describeGroups:
            return respond(request, describeGroups(try DescribeGroupsRequest(from: &frame, version: version), request))
        case .deleteGroups:
            return afterGroupWrites(request, respond(request, deleteGroups(try DeleteGroupsRequest(from: &frame, version: version), request)))
        case .createAcls:
            return respond(request, createAcls(try CreateAclsRequest(from: &frame, version: version), request))
        case .describeAcls:
            return respond(request, describeAcls(try DescribeAclsRequest(from: &frame, version: version), request))
        case .deleteAcls:
            return respond(request, deleteAcls(try DeleteAclsRequest(from: &frame, version: version), request))
        case .saslHandshake:
            let response = saslHandshake(try SaslHandshakeRequest(from: &frame, version: version), request)
            let refused = response.errorCode == ErrorCode.unsupportedSaslMechanism.rawValue
            return eventLoop.makeSucceededFuture(encode(response, for: request)?.closing(if: refused))
        case .saslAuthenticate:
            let closeDelay = TimeAmount.milliseconds(config.sasl.failedAuthenticationDelayMs)
            return saslAuthenticate(try SaslAuthenticateRequest(from: &frame, version: version), request).map {
                self.encode($0, for: request)?.closing(
                    if: $0.errorCode == ErrorCode.saslAuthenticationFailed.rawValue, after: closeDelay)
            }
        case .describeUserScramCredentials:
            return respond(
                request,
                describeUserScramCredentials(try DescribeUserScramCredentialsRequest(from: &frame, version: version), request))
        case .alterUserScramCredentials:
            return respond(
                request, alterUserScramCredentials(try AlterUserScramCredentialsRequest(from: &frame, version: version), request))
        case .consumerGroupHeartbeat:
            return afterGroupWrites(
                request,
                consumerGroupHeartbeat(try ConsumerGroupHeartbeatRequest(from: &frame, version: version), request)
                    .map { self.encode($0, for: request) })
        case .consumerGroupDescribe:
            return respond(request, consumerGroupDescribe(try ConsumerGroupDescribeRequest(from: &frame, version: version), request))
        }
    }

    /// The versions of `api` this broker serves as configured: KIP-848's APIs only with the
    /// consumer protocol on, as Kafka hides them when `group.coordinator.rebalance.protocols` lacks it.
    func served(_ api: ApiKey) -> ClosedRange<Int16>? {
        if !config.consumerGroupProtocolEnabled && SupportedApis.consumerGroupProtocol.contains(api) { return nil }
        return SupportedApis.range(of: api)
    }

    private func respond(_ request: Request, _ response: some KafkaResponse) -> EventLoopFuture<OutboundResponse?> {
        request.eventLoop.makeSucceededFuture(encode(response, for: request))
    }

    /// Under `--flush always`, holds a group coordinator's answer until what it wrote to
    /// `__consumer_offsets` (offsets, group metadata) is on disk: an acknowledged change survives a
    /// power cut. A failed sync fails the request, which closes the connection unanswered.
    private func afterGroupWrites(_ request: Request, _ answer: EventLoopFuture<OutboundResponse?>) -> EventLoopFuture<OutboundResponse?> {
        guard config.flushPolicy.acknowledgesOnlyDurableWrites else { return answer }
        return answer.flatMap { response in
            guard let log = self.storage.partition(topic: InternalTopics.consumerOffsets, partition: 0) else {
                return request.eventLoop.makeSucceededFuture(response)
            }
            let end = log.logEndOffset
            return self.runtime.task(on: request.eventLoop) {
                try await log.waitDurable(upTo: end)
                return response
            }
        }
    }

    /// The framed response as the single part of what the connection writes.
    func encode(_ response: some KafkaResponse, for request: Request, responseVersion: Int16? = nil) -> OutboundResponse? {
        OutboundResponse(encodeBuffer(response, for: request, responseVersion: responseVersion))
    }

    /// Frames a response: size, response header, body.
    func encodeBuffer(_ response: some KafkaResponse, for request: Request, responseVersion: Int16? = nil) -> ByteBuffer {
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
    /// The connection's listener and principal: what authorization and Metadata's addresses need.
    var session: ConnectionSession

    /// The address of the listener this request came through: every broker address a response
    /// carries must speak the protocol the client already speaks.
    func advertisedAddress(_ broker: Broker) -> HostPort {
        broker.advertisedListeners.address(for: session.listenerName)
    }
}

