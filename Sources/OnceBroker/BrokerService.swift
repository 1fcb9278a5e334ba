import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import OncePostgres
import OnceStorage
import Prometheus
import ServiceLifecycle

/// The broker as a ServiceLifecycle service: opens storage (recovering it), listens, serves until
/// graceful shutdown, then stops accepting, lets storage flush and close.
public struct BrokerService: Service {
    public let config: BrokerConfig
    let logger: Logger
    let registry: PrometheusCollectorRegistry?
    let view: BrokerView?
    let onReady: @Sendable (_ listeners: [BoundListener], _ metrics: SocketAddress?) -> Void

    /// A listener and the address it really bound (port 0 binds a free port, which tests use).
    public struct BoundListener: Sendable {
        public var listener: Listener
        public var address: SocketAddress
    }

    /// - Parameters:
    ///   - registry: where `/metrics` reads from; the process bootstraps swift-metrics with it.
    ///   - view: given the broker while it serves, for the web console.
    ///   - onReady: called once every listener is bound, in the order of `config.listeners`.
    public init(
        config: BrokerConfig, logger: Logger, registry: PrometheusCollectorRegistry? = nil, view: BrokerView? = nil,
        onReady: @escaping @Sendable (_ listeners: [BoundListener], _ metrics: SocketAddress?) -> Void = { _, _ in }
    ) {
        self.config = config
        self.logger = logger
        self.registry = registry
        self.view = view
        self.onReady = onReady
    }

    public func run() async throws {
        let tlsContext = try makeTLSContext()
        if let metricsListen = config.metricsListen, !config.metricsAllowRemote {
            try MetricsAddressGuard.check(metricsListen)
        }
        for listener in config.listeners {
            try ListenAddressProbe.check(listener)
        }
        let storage: any LogStorage
        let clusterId: String
        var dataLock: DataDirectoryLock?
        defer { dataLock?.release() }
        var databaseCluster: DatabaseCluster?
        let io = NIOThreadPool(numberOfThreads: max(1, config.ioThreads))
        io.start()
        let administration = NIOThreadPool(numberOfThreads: 1)
        administration.start()
        defer {
            io.shutdownGracefully { _ in }
            administration.shutdownGracefully { _ in }
        }
        switch config.storage {
        case .file:
            dataLock = try DataDirectoryLock(directory: config.dataDirectory)
            storage = try FileLogStorage(
                directory: config.dataDirectory, flushPolicy: config.flushPolicy, maxOpenFiles: config.maxOpenFiles,
                logger: logger, io: .threads(io))
            clusterId = try ClusterIdentity.loadOrCreate(directory: config.dataDirectory)
        case .memory:
            storage = MemoryLogStorage(flushPolicy: config.flushPolicy)
            clusterId = ClusterIdentity.random()
        case .postgres:
            let postgres = try PostgresLogStorage(
                url: config.postgresURL ?? "", nodeId: config.nodeId, tuning: config.postgresTuning,
                cacheBytes: config.postgresCacheBytes, logger: logger)
            storage = postgres
            clusterId = try ClusterIdentity.loadOrCreate(in: postgres)
            let cluster = DatabaseCluster(
                storage: postgres, nodeId: config.nodeId, sessionTimeoutMs: config.brokerSessionTimeoutMs, logger: logger)
            do {
                try await cluster.register(
                    advertised: AdvertisedListeners(config.listeners).kafkaForm(config.listeners), rack: config.rack)
            } catch let duplicate as DuplicateNodeId {
                try? storage.close()
                throw StartupError(description: duplicate.description)
            }
            databaseCluster = cluster
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: max(1, config.threads))
        let runtime = BrokerRuntime(timers: EventLoopTimers(group: group), io: .threads(io), administration: .threads(administration))
        let broker: Broker
        do {
            broker = try Broker(
                config: config, storage: storage, clusterId: clusterId, logger: logger, runtime: runtime, cluster: databaseCluster)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
        databaseCluster?.announceHeldLeases()
        let heartbeat = databaseCluster.map {
            ClusterHeartbeat($0, runtime: runtime, intervalMs: config.brokerHeartbeatIntervalMs)
        }
        do {
            try await serve(broker, tlsContext: tlsContext, on: group)
        } catch {
            await heartbeat?.stop()
            try? storage.close()
            try? await group.shutdownGracefully()
            throw error
        }
        await heartbeat?.stop()
        broker.interBrokerClient?.shutdown()
        databaseCluster?.deregister()
        broker.producers.snapshotAll()
        broker.snapshotCoordinators()
        try storage.close()
        try await group.shutdownGracefully()
        logger.info("broker stopped")
    }

    /// One TLS context for every SSL and SASL_SSL listener, built before anything is opened.
    private func makeTLSContext() throws -> NIOSSLContext? {
        let tlsListeners = config.listeners.filter { $0.securityProtocol.usesTLS }
        guard !tlsListeners.isEmpty else { return nil }
        guard let tls = config.tls else {
            throw StartupError(
                description:
                    "listener \(tlsListeners[0]) needs a certificate and key: give --ssl-certificate-location and --ssl-key-location")
        }
        return try tls.makeServerContext()
    }

    private func serve(_ broker: Broker, tlsContext: NIOSSLContext?, on group: MultiThreadedEventLoopGroup) async throws {
        let logger = self.logger
        // A budget below the largest request would leave that request unable to ever complete.
        let limits = KafkaConnectionHandler.Limits(
            maxFrameSize: config.maxRequestSize,
            budget: RequestBytesBudget(limit: max(config.queuedMaxRequestBytes, config.maxRequestSize)),
            requestReadTimeout: .milliseconds(config.requestReadTimeoutMs))
        let idleTimeout = TimeAmount.milliseconds(config.connectionsMaxIdleMs)
        let connections = ConnectionLimiter(maxTotal: config.maxConnections, maxPerAddress: config.maxConnectionsPerIp)
        var servers: [any Channel] = []
        var bound: [BoundListener] = []
        do {
            for listener in config.listeners {
                let server = try await ServerBootstrap(group: group)
                    .serverChannelOption(.backlog, value: 256)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                    .childChannelOption(.maxMessagesPerRead, value: 16)
                    .childChannelInitializer { channel in
                        let address = channel.remoteAddress?.ipAddress ?? "?"
                        if let refusal = connections.admit(address) {
                            logger.warning("refusing connection", metadata: ["peer": "\(address)", "reason": "\(refusal)"])
                            switch refusal {
                            case .total: broker.metrics.connectionRefused(.maxConnections)
                            case .perAddress: broker.metrics.connectionRefused(.maxConnectionsPerIp)
                            }
                            return channel.eventLoop.makeFailedFuture(refusal)
                        }
                        broker.metrics.connectionAccepted()
                        channel.closeFuture.whenComplete { _ in connections.release(address) }
                        return channel.eventLoop.makeCompletedFuture {
                            if listener.securityProtocol.usesTLS, let tlsContext {
                                try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tlsContext))
                                try channel.pipeline.syncOperations.addHandler(
                                    TLSHandshakeHandler(
                                        timeout: limits.requestReadTimeout,
                                        principalFromCertificate: listener.securityProtocol == .ssl, logger: logger))
                            }
                            try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: idleTimeout))
                            try channel.pipeline.syncOperations.addHandler(
                                KafkaConnectionHandler(broker: broker, listener: listener, limits: limits, logger: logger))
                        }
                    }
                    .bind(host: listener.address.host, port: listener.address.port).get()
                servers.append(server)
                guard let address = server.localAddress else {
                    throw StartupError(description: "listener \(listener) bound no address")
                }
                broker.advertisedListeners.bound(listener, port: address.port ?? listener.address.port)
                bound.append(BoundListener(listener: listener, address: address))
            }
        } catch {
            for server in servers { try? await server.close() }
            throw error
        }

        var metricsServer: (any Channel)?
        if let metricsListen = config.metricsListen, let registry {
            let state = BrokerStateMetrics(broker: broker, connections: connections)
            metricsServer = try await ServerBootstrap(group: group)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(registry: registry, state: state))
                    }
                }
                .bind(host: metricsListen.host, port: metricsListen.port).get()
        }

        // The cleaner runs on a thread of its own: a pass reads and rewrites whole segments. The
        // coordinators' topics are compacted by their snapshots, which their replay relies on.
        (broker.storage as? any LogCleaning)?.startCleaner(
            backoffMs: config.cleanerBackoffMs, maxBytesPerSecond: config.cleanerIoMaxBytesPerSecond,
            dedupeBufferBytes: config.cleanerDedupeBufferBytes, excluding: InternalTopics.names)
        let periodic = try broker.startPeriodicWork()

        view?.attach(broker, connections: connections)
        for listener in bound {
            logger.info(
                "listening",
                metadata: [
                    "listener": "\(listener.listener.name)", "protocol": "\(listener.listener.securityProtocol.rawValue)",
                    "listen": "\(listener.address)",
                    "advertised": "\(broker.advertisedListeners.address(for: listener.listener.name))",
                    "node": "\(config.nodeId)",
                ])
        }
        onReady(bound, metricsServer?.localAddress)
        // Serve until shutdown is requested (SIGTERM/SIGINT through the ServiceGroup) or the task is cancelled.
        try? await gracefulShutdown()
        logger.info("shutting down")
        view?.detach()
        broker.stopPeriodicWork(periodic)
        try? await metricsServer?.close()
        for server in servers { try? await server.close() }
    }
}
