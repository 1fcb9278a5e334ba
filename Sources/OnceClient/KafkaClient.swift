import KafkaProtocol
import NIOCore
import NIOPosix

/// A client for a Kafka cluster: keeps the cluster's metadata and one connection per broker, and
/// routes each request to the broker that must answer it (partition leader, controller).
///
/// The admin, produce and fetch operations live in extensions, one file per API family.
public actor KafkaClient {
    public nonisolated let configuration: KafkaClientConfiguration
    public nonisolated let bootstrapServers: [BootstrapServer]
    private let group: any EventLoopGroup
    /// The bootstrap server that answered last; used for requests any broker can serve. Opened
    /// on first use and reopened after it closes, so a client can be made before its broker
    /// is up and outlives a broker restart.
    private var bootstrap: KafkaConnection?
    /// The connect under way, shared by every request that needs the bootstrap connection.
    private var bootstrapConnecting: Task<KafkaConnection, any Error>?
    /// Where the next bootstrap connect starts in `bootstrapServers`: the server that answered
    /// last, so a reconnect goes back to it first.
    private var preferredServer = 0
    private var isClosed = false

    private var brokers: [Int32: BrokerInfo] = [:]
    private(set) var controllerId: Int32 = -1
    private var leaders: [TopicPartition: Int32] = [:]
    private var topicIds: [String: KafkaUUID] = [:]
    private var topicNames: [KafkaUUID: String] = [:]
    private var connections: [Int32: Task<KafkaConnection, any Error>] = [:]

    /// A client that connects when the first request needs a broker, trying each of
    /// `bootstrapServers` in turn; a request made while none is reachable fails with
    /// `cannotConnect` and the next one tries again.
    public init(
        bootstrapServers: [BootstrapServer],
        configuration: KafkaClientConfiguration = KafkaClientConfiguration(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) throws(KafkaUsageError) {
        guard !bootstrapServers.isEmpty else {
            throw KafkaUsageError(.noBootstrapServers, "at least one bootstrap server is required")
        }
        self.configuration = configuration
        self.bootstrapServers = bootstrapServers
        self.group = group
    }

    /// Connects to the first reachable server of `bootstrapServers` and negotiates versions,
    /// for callers that want an unreachable cluster reported now. When none is reachable, the
    /// error names the last one tried.
    public static func connect(
        bootstrapServers: [BootstrapServer],
        configuration: KafkaClientConfiguration = KafkaClientConfiguration(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> KafkaClient {
        let client = try KafkaClient(bootstrapServers: bootstrapServers, configuration: configuration, group: group)
        _ = try await client.liveBootstrap()
        return client
    }

    /// Closes every connection. The client must not be used afterwards.
    public func close() async {
        isClosed = true
        bootstrapConnecting?.cancel()
        let open = connections.values
        connections = [:]
        for task in open {
            if let connection = try? await task.value, connection !== bootstrap {
                await connection.close()
            }
        }
        await bootstrap?.close()
    }

    // MARK: Metadata

    /// Fetches metadata for `topics` (all topics when nil) and refreshes the routing caches.
    /// `allowAutoTopicCreation` lets a broker configured for it create missing topics, as
    /// producers do; admin tools leave it off.
    public func metadata(topics: [String]? = nil, allowAutoTopicCreation: Bool = false) async throws -> ClusterMetadata {
        var request = MetadataRequest()
        request.allowAutoTopicCreation = allowAutoTopicCreation
        request.topics = topics?.map {
            var topic = MetadataRequest.MetadataRequestTopic()
            topic.name = $0
            return topic
        }
        let response = try await liveBootstrap().send(request)
        if let error = KafkaError(errorCode: response.errorCode) { throw error }
        let metadata = ClusterMetadata(response)
        remember(metadata)
        return metadata
    }

    private func remember(_ metadata: ClusterMetadata) {
        for broker in metadata.brokers {
            if let known = brokers[broker.nodeId], known.host != broker.host || known.port != broker.port {
                connections.removeValue(forKey: broker.nodeId)
            }
            brokers[broker.nodeId] = broker
        }
        controllerId = metadata.controllerId
        for topic in metadata.topics where topic.error == nil {
            if topic.topicId != .zero {
                topicIds[topic.name] = topic.topicId
                topicNames[topic.topicId] = topic.name
            }
            for partition in topic.partitions {
                leaders[TopicPartition(topic.name, partition.partition)] = partition.leader
            }
        }
    }

    /// Marks the partitions' leaders unknown, so the next request for them refreshes metadata.
    func forgetLeaders(of partitions: some Sequence<TopicPartition>) {
        for partition in partitions where leaders[partition] != nil { leaders[partition] = -1 }
    }

    func forget(topic: String) {
        if let id = topicIds.removeValue(forKey: topic) { topicNames.removeValue(forKey: id) }
        leaders = leaders.filter { $0.key.topic != topic }
    }

    func topicId(_ name: String) -> KafkaUUID? { topicIds[name] }
    func topicName(_ id: KafkaUUID) -> String? { topicNames[id] }

    /// The topic ids of `topics`, from the cache or a metadata refresh; needed by request
    /// versions that name topics by id (Produce v13+, Fetch v13+).
    func resolveTopicIds(_ topics: Set<String>) async throws -> [String: KafkaUUID] {
        if topics.contains(where: { topicIds[$0] == nil }) {
            _ = try await metadata(topics: Array(topics))
        }
        var ids: [String: KafkaUUID] = [:]
        for topic in topics {
            guard let id = topicIds[topic] else {
                throw KafkaError(.unknownTopicOrPartition, message: "no topic id known for '\(topic)'")
            }
            ids[topic] = id
        }
        return ids
    }

    // MARK: Routing

    /// Groups `partitions` by leader, refreshing metadata once if any leader is unknown.
    func leaders(for partitions: some Collection<TopicPartition>) async throws -> [Int32: [TopicPartition]] {
        if partitions.contains(where: { (leaders[$0] ?? -1) < 0 }) {
            let topics = Set(partitions.map(\.topic))
            let metadata = try await metadata(topics: Array(topics))
            for topic in metadata.topics where topics.contains(topic.name) {
                if let error = topic.error {
                    throw KafkaError(error.code, message: error.message ?? "topic '\(topic.name)'")
                }
            }
        }
        var byLeader: [Int32: [TopicPartition]] = [:]
        for partition in partitions {
            guard let leader = leaders[partition] else {
                throw KafkaError(.unknownTopicOrPartition, message: "no partition \(partition)")
            }
            guard leader >= 0 else {
                throw KafkaError(.leaderNotAvailable, message: "no leader for \(partition)")
            }
            byLeader[leader, default: []].append(partition)
        }
        return byLeader
    }

    /// The connection to broker `nodeId`, opened on first use. A broker that advertises the
    /// bootstrap address shares the bootstrap connection.
    func connection(toNode nodeId: Int32) async throws -> KafkaConnection {
        if let task = connections[nodeId] {
            do {
                let connection = try await task.value
                if connection.isActive { return connection }
                // A closed connection (broker restart, cut link) is replaced on next use.
                if connections[nodeId] == task { connections.removeValue(forKey: nodeId) }
                return try await self.connection(toNode: nodeId)
            } catch {
                // A failed connect is not cached: the next request tries again.
                connections.removeValue(forKey: nodeId)
                throw error
            }
        }
        guard let broker = brokers[nodeId] else {
            throw KafkaClientError(.unknownBroker, "broker \(nodeId) is not in the cluster metadata")
        }
        if let bootstrap, broker.host == bootstrap.host, broker.port == bootstrap.port {
            return try await liveBootstrap()
        }
        let configuration = configuration, group = group
        let task = Task {
            try await KafkaConnection.connect(
                host: broker.host, port: broker.port, configuration: configuration, group: group)
        }
        connections[nodeId] = task
        return try await connection(toNode: nodeId)
    }

    /// The bootstrap connection, opened or reopened when it is not live: first to the server
    /// that answered last, then to the others.
    func liveBootstrap() async throws -> KafkaConnection {
        guard !isClosed else { throw KafkaClientError(.connectionClosed, "the client is closed") }
        if let bootstrap, bootstrap.isActive { return bootstrap }
        if let connecting = bootstrapConnecting { return try await connecting.value }
        let servers = Array(bootstrapServers[preferredServer...] + bootstrapServers[..<preferredServer])
        let configuration = configuration, group = group
        let task = Task { () async throws -> (KafkaConnection, BootstrapServer) in
            var lastError: (any Error)?
            for server in servers {
                try Task.checkCancellation()
                do {
                    let connection = try await KafkaConnection.connect(
                        host: server.host, port: server.port, configuration: configuration, group: group)
                    return (connection, server)
                } catch {
                    lastError = error
                }
            }
            throw lastError!
        }
        let shared = Task { try await task.value.0 }
        bootstrapConnecting = shared
        defer { if bootstrapConnecting == shared { bootstrapConnecting = nil } }
        let (connection, server) = try await task.value
        if isClosed {
            await connection.close()
            throw KafkaClientError(.connectionClosed, "the client is closed")
        }
        if let index = bootstrapServers.firstIndex(of: server) { preferredServer = index }
        bootstrap = connection
        return connection
    }

    /// The controller handles topic creation and deletion; any broker forwards for it in KRaft
    /// clusters, so the bootstrap connection is the fallback when no controller is known.
    func controllerConnection() async throws -> KafkaConnection {
        if controllerId < 0 { _ = try await metadata(topics: []) }
        guard controllerId >= 0, brokers[controllerId] != nil else { return try await liveBootstrap() }
        return try await connection(toNode: controllerId)
    }
}
