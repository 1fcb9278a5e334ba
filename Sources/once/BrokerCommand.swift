import ArgumentParser
import Foundation
import KafkaProtocol
import Logging
import Metrics
import OnceBroker
import OnceConsole
import OnceCore
import Prometheus
import ServiceLifecycle

/// `once broker`: runs a broker until SIGTERM or SIGINT. Every flag can also come from an
/// environment variable (named in its help), so containers and scripts need no command line.
struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "broker", abstract: "Run a broker.")

    @Option(help: "Directory for logs and metadata [env: ONCE_DATA_DIR] (default: ./data)")
    var dataDir: String?

    @Option(help: "HOST:PORT to listen on [env: ONCE_LISTEN] (default: 127.0.0.1:9092)")
    var listen: String?

    @Option(help: "HOST:PORT clients are told to connect to [env: ONCE_ADVERTISED_LISTENER] (default: the listen address)")
    var advertisedListener: String?

    @Option(help: "Listeners, Kafka's listeners: NAME://HOST:PORT[,...], e.g. PLAINTEXT://127.0.0.1:9092,SSL://127.0.0.1:9093; replaces --listen [env: ONCE_LISTENERS]")
    var listeners: String?

    @Option(help: "Addresses clients of each listener are told to connect to, Kafka's advertised.listeners: NAME://HOST:PORT[,...] [env: ONCE_ADVERTISED_LISTENERS] (default: each listener's own address)")
    var advertisedListeners: String?

    @Option(help: "Security protocol of each named listener, Kafka's listener.security.protocol.map: NAME:PROTOCOL[,...] [env: ONCE_LISTENER_SECURITY_PROTOCOL_MAP] (default: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL map to themselves)")
    var listenerSecurityProtocolMap: String?

    @Option(help: "PEM certificate chain of the SSL/SASL_SSL listeners, server certificate first [env: ONCE_BROKER_SSL_CERTIFICATE_LOCATION]")
    var sslCertificateLocation: String?

    @Option(help: "PEM private key of that certificate [env: ONCE_BROKER_SSL_KEY_LOCATION]")
    var sslKeyLocation: String?

    @Option(help: "Passphrase of an encrypted --ssl-key-location, ssl.key.password [env: ONCE_BROKER_SSL_KEY_PASSWORD]")
    var sslKeyPassword: String?

    @Option(help: "PEM CA bundle client certificates, and the other brokers' certificates on an SSL/SASL_SSL inter-broker listener, must chain to, ssl.truststore.location [env: ONCE_BROKER_SSL_CA_LOCATION] (default: the system trust store for clients; required for an SSL inter-broker listener)")
    var sslCaLocation: String?

    @Option(help: "Whether the other brokers' certificates must name the address they advertise, ssl.endpoint.identification.algorithm: https, or an empty value to check the chain only [env: ONCE_BROKER_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM] (default: https)")
    var sslEndpointIdentificationAlgorithm: String?

    @Option(help: "Client certificates, ssl.client.auth: none|requested|required [env: ONCE_BROKER_SSL_CLIENT_AUTH] (default: none)")
    var sslClientAuth: String?

    @Option(help: "This broker's node id [env: ONCE_NODE_ID] (default: 1)")
    var nodeId: Int32?

    @Option(help: "HOST:PORT for the Prometheus /metrics endpoint, loopback only unless --metrics-allow-remote [env: ONCE_METRICS_LISTEN] (default: off)")
    var metricsListen: String?

    @Option(help: "HOST:PORT for the web console and its JSON API [env: ONCE_HTTP_LISTEN] (default: off)")
    var httpListen: String?

    @Option(help: "Bytes of a console request's headers before 431 [env: ONCE_HTTP_MAX_REQUEST_HEADER_BYTES] (default: 16384)")
    var httpMaxRequestHeaderBytes: Int?

    @Option(help: "Header fields in a console request before 431 [env: ONCE_HTTP_MAX_REQUEST_HEADERS] (default: 64)")
    var httpMaxRequestHeaders: Int?

    @Option(help: "Body bytes of a console request before 413 [env: ONCE_HTTP_MAX_REQUEST_BODY_BYTES] (default: 4096)")
    var httpMaxRequestBodyBytes: Int?

    @Option(help: "Console connections open at once [env: ONCE_HTTP_MAX_CONNECTIONS] (default: 64)")
    var httpMaxConnections: Int?

    @Option(help: "Close a console connection idle this long, ms [env: ONCE_HTTP_CONNECTIONS_MAX_IDLE_MS] (default: 60000)")
    var httpConnectionsMaxIdleMs: Int?

    @Flag(help: "Let the unauthenticated /metrics endpoint listen on a non-loopback address [env: ONCE_METRICS_ALLOW_REMOTE=true]")
    var metricsAllowRemote = false

    @Option(help: "Create topics on first use: true|false [env: ONCE_AUTO_CREATE_TOPICS] (default: true)")
    var autoCreateTopics: String?

    @Option(help: "Partitions of auto-created topics [env: ONCE_NUM_PARTITIONS] (default: 1)")
    var numPartitions: Int32?

    @Option(help: "When data is fsynced: none|always|interval:MS [env: ONCE_FLUSH] (default: none)")
    var flush: String?

    @Option(help: "Storage engine: file|memory|postgres [env: ONCE_STORAGE] (default: file)")
    var storage: String?

    @Option(help: "libpq URL of the postgres engine's database, postgres://user:pass@host:port/db [env: ONCE_POSTGRES_URL]")
    var postgresUrl: String?

    @Option(help: "postgres engine: a broker whose heartbeat is this old is dead, in ms (broker.session.timeout.ms) [env: ONCE_BROKER_SESSION_TIMEOUT_MS] (default: 9000)")
    var brokerSessionTimeoutMs: Int64?

    @Option(help: "postgres engine: how often a broker renews its membership and leases, in ms (broker.heartbeat.interval.ms) [env: ONCE_BROKER_HEARTBEAT_INTERVAL_MS] (default: 2000)")
    var brokerHeartbeatIntervalMs: Int64?

    @Option(help: "postgres engine: the listener other brokers reach this one through for transaction markers and verification, PLAINTEXT or SSL, or with --inter-broker-sasl-username SASL_PLAINTEXT or SASL_SSL (inter.broker.listener.name) [env: ONCE_INTER_BROKER_LISTENER_NAME] (default: the first PLAINTEXT listener, SASL_PLAINTEXT with --inter-broker-sasl-username)")
    var interBrokerListenerName: String?

    @Option(help: "postgres engine: the SASL mechanism brokers authenticate to each other with, PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, over a SASL_PLAINTEXT or SASL_SSL inter-broker listener (sasl.mechanism.inter.broker.protocol) [env: ONCE_INTER_BROKER_SASL_MECHANISM] (default: SCRAM-SHA-512 when a username is given)")
    var interBrokerSaslMechanism: String?

    @Option(help: "postgres engine: the user brokers authenticate to each other as; grant it CLUSTER_ACTION or list it in --super-users [env: ONCE_INTER_BROKER_SASL_USERNAME]")
    var interBrokerSaslUsername: String?

    @Option(help: "postgres engine: that user's password; prefer the variable, which keeps it out of ps [env: ONCE_INTER_BROKER_SASL_PASSWORD]")
    var interBrokerSaslPassword: String?

    @Option(help: "postgres engine: how long a request to another broker waits for its answer, in ms (request.timeout.ms) [env: ONCE_INTER_BROKER_REQUEST_TIMEOUT_MS] (default: 30000)")
    var interBrokerRequestTimeoutMs: Int64?

    @Option(help: "postgres engine: wait before sending an undelivered transaction marker again, in ms, doubled per failure (retry.backoff.ms) [env: ONCE_TRANSACTION_MARKER_RETRY_BACKOFF_MS] (default: 100)")
    var transactionMarkerRetryBackoffMs: Int64?

    @Option(help: "postgres engine: the longest wait between marker deliveries, in ms (retry.backoff.max.ms) [env: ONCE_TRANSACTION_MARKER_RETRY_BACKOFF_MAX_MS] (default: 1000)")
    var transactionMarkerRetryBackoffMaxMs: Int64?

    @Option(help: "postgres engine: how long appends nobody waits for gather before a commit, in ms (Kafka: none) [env: ONCE_POSTGRES_COMMIT_LINGER_MS] (default: 20)")
    var postgresCommitLingerMs: Int64?

    @Option(help: "postgres engine: first pause before reconnecting to the database, doubled per failure, in ms (reconnect.backoff.ms) [env: ONCE_POSTGRES_RECONNECT_BACKOFF_MS] (default: 50)")
    var postgresReconnectBackoffMs: Int64?

    @Option(help: "postgres engine: longest pause between reconnection attempts, in ms (reconnect.backoff.max.ms) [env: ONCE_POSTGRES_RECONNECT_BACKOFF_MAX_MS] (default: 2000)")
    var postgresReconnectBackoffMaxMs: Int64?

    @Option(help: "postgres engine: how long one statement may go unanswered before the connection is dropped and reconnected, in ms (request.timeout.ms) [env: ONCE_POSTGRES_REQUEST_TIMEOUT_MS] (default: 30000)")
    var postgresRequestTimeoutMs: Int64?
    @Option(help: "postgres engine: committed batches each partition keeps in memory, in bytes; older ones are read from the database (Kafka: none, the OS page cache) [env: ONCE_POSTGRES_CACHE_BYTES] (default: 1048576)")
    var postgresCacheBytes: Int?

    @Option(help: "This broker's rack, reported in Metadata (broker.rack) [env: ONCE_BROKER_RACK]")
    var brokerRack: String?

    @Option(help: "Largest request accepted, in bytes [env: ONCE_MAX_REQUEST_SIZE] (default: 104857600)")
    var maxRequestSize: Int?

    @Option(help: "Wait for more members before a new group's first rebalance, in ms [env: ONCE_GROUP_INITIAL_REBALANCE_DELAY_MS] (default: 3000)")
    var groupInitialRebalanceDelayMs: Int32?

    @Option(help: "Group protocols served, classic and/or consumer (KIP-848) [env: ONCE_GROUP_COORDINATOR_REBALANCE_PROTOCOLS] (default: classic,consumer)")
    var groupCoordinatorRebalanceProtocols: String?

    @Option(help: "The transaction.version finalized for clients: 0, 1 or 2 (transactions V2) [env: ONCE_TRANSACTION_VERSION] (default: 2)")
    var transactionVersion: Int16?

    @Option(help: "How often KIP-848 members heartbeat, ms [env: ONCE_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS] (default: 5000)")
    var groupConsumerHeartbeatIntervalMs: Int32?

    @Option(help: "How long a KIP-848 heartbeat that changed the group waits before its answer, ms, group.coordinator.append.linger.ms [env: ONCE_GROUP_COORDINATOR_APPEND_LINGER_MS] (default: 10)")
    var groupCoordinatorAppendLingerMs: Int32?

    @Option(help: "A silent KIP-848 member is removed after this, ms [env: ONCE_GROUP_CONSUMER_SESSION_TIMEOUT_MS] (default: 45000)")
    var groupConsumerSessionTimeoutMs: Int32?

    @Option(help: "Server-side assignors, the first the default [env: ONCE_GROUP_CONSUMER_ASSIGNORS] (default: uniform,range)")
    var groupConsumerAssignors: String?

    @Option(help: "Most members of one KIP-848 group [env: ONCE_GROUP_CONSUMER_MAX_SIZE] (default: unbounded)")
    var groupConsumerMaxSize: Int?

    @Option(help: "Convert groups with members between protocols: bidirectional, upgrade, downgrade, disabled [env: ONCE_GROUP_CONSUMER_MIGRATION_POLICY] (default: bidirectional)")
    var groupConsumerMigrationPolicy: String?

    @Option(help: "Keep an empty group's committed offsets this long [env: ONCE_OFFSETS_RETENTION_MINUTES] (default: 10080)")
    var offsetsRetentionMinutes: Int64?

    @Option(help: "Wait between log cleaner passes, ms [env: ONCE_LOG_CLEANER_BACKOFF_MS] (default: 15000)")
    var logCleanerBackoffMs: Int64?

    @Option(help: "Most bytes per second the log cleaner reads and writes [env: ONCE_LOG_CLEANER_IO_MAX_BYTES_PER_SECOND] (default: unlimited)")
    var logCleanerIoMaxBytesPerSecond: Double?

    @Option(help: "Most bytes of memory a log cleaner pass's offset map takes, 24 a key [env: ONCE_LOG_CLEANER_DEDUPE_BUFFER_SIZE] (default: 134217728)")
    var logCleanerDedupeBufferSize: Int?

    @Option(help: "Log level: trace|debug|info|notice|warning|error|critical [env: ONCE_LOG_LEVEL] (default: info)")
    var logLevel: String?

    @Option(help: "Largest transaction timeout a producer may ask for, ms [env: ONCE_TRANSACTION_MAX_TIMEOUT_MS] (default: 900000)")
    var transactionMaxTimeoutMs: Int32?

    @Option(help: "How often open transactions are checked against their timeouts, ms [env: ONCE_TRANSACTION_TIMEOUT_CHECK_INTERVAL_MS] (default: 1000)")
    var transactionTimeoutCheckIntervalMs: Int64?

    @Option(help: "How long an idle producer id's state is kept, ms [env: ONCE_PRODUCER_ID_EXPIRATION_MS] (default: 86400000)")
    var producerIdExpirationMs: Int64?

    @Option(help: "Segment files kept open at once, least recently used closed first [env: ONCE_MAX_OPEN_FILES] (default: 1000)")
    var maxOpenFiles: Int?

    @Option(help: "Threads for blocking disk work: fsyncs, index writes, snapshots, retention [env: ONCE_IO_THREADS] (default: 8)")
    var ioThreads: Int?

    @Option(help: "Auto-creation stops once the broker holds this many partitions [env: ONCE_AUTO_CREATE_MAX_PARTITIONS] (default: 10000)")
    var autoCreateMaxPartitions: Int?

    @Option(help: "Partitions per second auto-creation may add [env: ONCE_AUTO_CREATE_PARTITIONS_PER_SECOND] (default: 100)")
    var autoCreatePartitionsPerSecond: Double?

    @Option(help: "Largest Fetch response in bytes, fetch.max.bytes [env: ONCE_FETCH_MAX_BYTES] (default: 57671680)")
    var fetchMaxBytes: Int?

    @Option(help: "Request bytes buffered across all connections before reads pause, queued.max.request.bytes [env: ONCE_QUEUED_MAX_REQUEST_BYTES] (default: 134217728)")
    var queuedMaxRequestBytes: Int?

    @Option(help: "Close a connection whose started request is unfinished after this many ms [env: ONCE_REQUEST_READ_TIMEOUT_MS] (default: 30000)")
    var requestReadTimeoutMs: Int64?

    @Option(help: "Close a connection idle this many ms, connections.max.idle.ms [env: ONCE_CONNECTIONS_MAX_IDLE_MS] (default: 600000)")
    var connectionsMaxIdleMs: Int64?

    @Option(help: "Connections open at once, max.connections [env: ONCE_MAX_CONNECTIONS] (default: 10000)")
    var maxConnections: Int?

    @Option(help: "Connections open at once from one IP address, max.connections.per.ip [env: ONCE_MAX_CONNECTIONS_PER_IP] (default: unlimited)")
    var maxConnectionsPerIp: Int?
    @Option(help: "Most partitions one CreateTopics may ask for [env: ONCE_MAX_PARTITIONS_PER_REQUEST] (default: 10000)")
    var maxPartitionsPerRequest: Int?

    @Option(help: "Most partitions this broker holds [env: ONCE_MAX_PARTITIONS] (default: 50000)")
    var maxPartitions: Int?

    @Option(help: "Check every request against the stored ACLs, authorizer.class.name: on|off [env: ONCE_AUTHORIZER] (default: off)")
    var authorizer: String?

    @Option(help: "Principals allowed everything, super.users: 'User:admin;User:ops' [env: ONCE_SUPER_USERS] (default: none)")
    var superUsers: String?

    @Option(help: "Allow what no ACL names, allow.everyone.if.no.acl.found: true|false [env: ONCE_ALLOW_EVERYONE_IF_NO_ACL_FOUND] (default: false)")
    var allowEveryoneIfNoAclFound: String?
    @OptionGroup(title: "SASL") var sasl: SaslBrokerOptions

    func run() async throws {
        let config = try makeConfig()
        let level = try setting(logLevel, "ONCE_LOG_LEVEL").map { value -> Logger.Level in
            guard let level = Logger.Level(rawValue: value) else { throw ValidationError("unknown log level '\(value)'") }
            return level
        } ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "once.broker")
        let registry = PrometheusCollectorRegistry()
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.durationHistogramBuckets[BrokerMetricNames.requestDuration] = BrokerMetricNames.requestDurationBuckets
        MetricsSystem.bootstrap(factory)

        let console = try setting(httpListen, "ONCE_HTTP_LISTEN").map { try address($0, "--http-listen") }
        // Before the data directory is touched, like the Kafka listener: a taken console port names itself.
        if let console { try ListenAddressProbe.check(console) }
        let view = console.map { _ in BrokerView() }
        let service = BrokerService(config: config, logger: logger, registry: registry, view: view) { listeners, metrics in
            let addresses = listeners.map {
                "\($0.listener.name)://\(HostPort(host: $0.listener.address.host, port: $0.address.port ?? $0.listener.address.port))"
            }
            var line = "once broker ready on \(addresses.joined(separator: " "))"
            if let metrics { line += " (metrics on \(config.metricsListen?.host ?? "?"):\(metrics.port ?? 0))" }
            line += ", version \(OnceVersion.string)"
            print(line)
            fflush(nil)
        }
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: service, successTerminationBehavior: .gracefullyShutdownGroup)
        ]
        if let console, let view {
            var configuration = ConsoleService.Configuration(host: console.host, port: console.port)
            if let v = try positive(httpMaxRequestHeaderBytes, "ONCE_HTTP_MAX_REQUEST_HEADER_BYTES") { configuration.maxRequestHeaderBytes = v }
            if let v = try positive(httpMaxRequestHeaders, "ONCE_HTTP_MAX_REQUEST_HEADERS") { configuration.maxRequestHeaders = v }
            if let v = try positive(httpMaxConnections, "ONCE_HTTP_MAX_CONNECTIONS") { configuration.maxConnections = v }
            if let v = try positive(httpConnectionsMaxIdleMs, "ONCE_HTTP_CONNECTIONS_MAX_IDLE_MS") {
                configuration.connectionsMaxIdleMs = Int64(v)
            }
            if let v = try setting(httpMaxRequestBodyBytes, "ONCE_HTTP_MAX_REQUEST_BODY_BYTES") {
                guard v >= 0 else { throw ValidationError("--http-max-request-body-bytes must be 0 or more") }
                configuration.maxRequestBodyBytes = v
            }
            let consoleService = ConsoleService(
                configuration: configuration, view: view, logger: Logger(label: "once.console")
            ) { port in
                print("once console on http://\(console.host):\(port)/")
                fflush(nil)
            }
            services.append(.init(service: consoleService, successTerminationBehavior: .gracefullyShutdownGroup))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
    }

    private func makeConfig() throws -> BrokerConfig {
        var config = BrokerConfig()
        if let v = setting(dataDir, "ONCE_DATA_DIR") { config.dataDirectory = v }
        config.listeners = try makeListeners()
        config.tls = try makeTLS()
        if metricsAllowRemote { config.metricsAllowRemote = true }
        if let v = setting(nil as String?, "ONCE_METRICS_ALLOW_REMOTE") {
            guard let b = Bool(v.lowercased()) else { throw ValidationError("ONCE_METRICS_ALLOW_REMOTE takes true or false, not '\(v)'") }
            config.metricsAllowRemote = config.metricsAllowRemote || b
        }
        if let v = setting(metricsListen, "ONCE_METRICS_LISTEN") { config.metricsListen = try address(v, "--metrics-listen") }
        if let v = try setting(nodeId, "ONCE_NODE_ID") { config.nodeId = v }
        if let v = setting(autoCreateTopics, "ONCE_AUTO_CREATE_TOPICS") {
            guard let b = Bool(v.lowercased()) else { throw ValidationError("--auto-create-topics takes true or false, not '\(v)'") }
            config.autoCreateTopics = b
        }
        if let v = try setting(numPartitions, "ONCE_NUM_PARTITIONS") {
            guard v > 0 else { throw ValidationError("--num-partitions must be positive") }
            config.defaultPartitions = v
        }
        if let v = setting(flush, "ONCE_FLUSH") { config.flushPolicy = try flushPolicy(v) }
        if let v = setting(storage, "ONCE_STORAGE") {
            guard let engine = BrokerConfig.StorageEngine(rawValue: v) else {
                throw ValidationError("--storage takes file, memory or postgres, not '\(v)'")
            }
            config.storage = engine
        }
        if let v = setting(postgresUrl, "ONCE_POSTGRES_URL") { config.postgresURL = v }
        if config.storage == .postgres {
            guard config.postgresURL != nil else { throw ValidationError("--storage postgres needs --postgres-url") }
            // Nothing is acknowledged before its transaction commits: the engine's contract is `always`.
            guard config.flushPolicy == .none || config.flushPolicy == .always else {
                throw ValidationError("--storage postgres acknowledges only committed writes; --flush must be always")
            }
            config.flushPolicy = .always
        }
        if let v = try setting(postgresCacheBytes, "ONCE_POSTGRES_CACHE_BYTES") {
            guard v >= 0 else { throw ValidationError("--postgres-cache-bytes must not be negative") }
            config.postgresCacheBytes = v
        }
        if let v = try setting(brokerSessionTimeoutMs, "ONCE_BROKER_SESSION_TIMEOUT_MS") { config.brokerSessionTimeoutMs = v }
        if let v = try setting(brokerHeartbeatIntervalMs, "ONCE_BROKER_HEARTBEAT_INTERVAL_MS") { config.brokerHeartbeatIntervalMs = v }
        if let v = setting(interBrokerListenerName, "ONCE_INTER_BROKER_LISTENER_NAME") { config.interBrokerListenerName = v }
        if let v = try setting(interBrokerRequestTimeoutMs, "ONCE_INTER_BROKER_REQUEST_TIMEOUT_MS") { config.interBrokerRequestTimeoutMs = v }
        if let v = try setting(transactionMarkerRetryBackoffMs, "ONCE_TRANSACTION_MARKER_RETRY_BACKOFF_MS") { config.transactionMarkerRetryBackoffMs = v }
        if let v = try setting(transactionMarkerRetryBackoffMaxMs, "ONCE_TRANSACTION_MARKER_RETRY_BACKOFF_MAX_MS") { config.transactionMarkerRetryBackoffMaxMs = v }
        guard config.interBrokerRequestTimeoutMs > 0, config.transactionMarkerRetryBackoffMs > 0,
            config.transactionMarkerRetryBackoffMaxMs >= config.transactionMarkerRetryBackoffMs
        else {
            throw ValidationError("--inter-broker-request-timeout-ms and --transaction-marker-retry-backoff-ms must be positive, and --transaction-marker-retry-backoff-max-ms at least the backoff")
        }
        if let username = setting(interBrokerSaslUsername, "ONCE_INTER_BROKER_SASL_USERNAME") {
            let name = setting(interBrokerSaslMechanism, "ONCE_INTER_BROKER_SASL_MECHANISM") ?? SaslMechanism.scramSha512.rawValue
            guard let mechanism = SaslMechanism(rawValue: name) else {
                throw ValidationError("--inter-broker-sasl-mechanism takes PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512, not '\(name)'")
            }
            guard let password = setting(interBrokerSaslPassword, "ONCE_INTER_BROKER_SASL_PASSWORD") else {
                throw ValidationError("--inter-broker-sasl-username needs --inter-broker-sasl-password (or ONCE_INTER_BROKER_SASL_PASSWORD)")
            }
            config.interBrokerSasl = (mechanism, username, password)
        }
        if let problem = config.interBrokerProblem { throw ValidationError(problem) }
        // A beat must land inside the session, or a live broker would be counted dead between beats.
        guard config.brokerHeartbeatIntervalMs > 0, config.brokerHeartbeatIntervalMs < config.brokerSessionTimeoutMs else {
            throw ValidationError("--broker-heartbeat-interval-ms must be positive and below --broker-session-timeout-ms (\(config.brokerSessionTimeoutMs))")
        }
        try applyPostgresTimings(&config)
        if let v = setting(brokerRack, "ONCE_BROKER_RACK"), !v.isEmpty { config.rack = v }
        if let v = try setting(maxRequestSize, "ONCE_MAX_REQUEST_SIZE") {
            guard v > 0 else { throw ValidationError("--max-request-size must be positive") }
            config.maxRequestSize = v
        }
        if let v = try setting(groupInitialRebalanceDelayMs, "ONCE_GROUP_INITIAL_REBALANCE_DELAY_MS") {
            guard v >= 0 else { throw ValidationError("--group-initial-rebalance-delay-ms must not be negative") }
            config.groupInitialRebalanceDelayMs = v
        }
        if let v = setting(groupCoordinatorRebalanceProtocols, "ONCE_GROUP_COORDINATOR_REBALANCE_PROTOCOLS") {
            let protocols = Set(v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() })
            guard protocols.contains("classic"), protocols.isSubset(of: ["classic", "consumer"]) else {
                throw ValidationError("--group-coordinator-rebalance-protocols takes classic[,consumer], not '\(v)'")
            }
            config.consumerGroupProtocolEnabled = protocols.contains("consumer")
        }
        if let v = try setting(transactionVersion, "ONCE_TRANSACTION_VERSION") {
            guard BrokerConfig.transactionVersions.contains(v) else {
                throw ValidationError("--transaction-version takes 0, 1 or 2, not \(v)")
            }
            config.transactionVersion = v
        }
        if let v = try setting(groupConsumerHeartbeatIntervalMs, "ONCE_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS") {
            guard v > 0 else { throw ValidationError("--group-consumer-heartbeat-interval-ms must be positive") }
            config.groupConsumerHeartbeatIntervalMs = v
        }
        if let v = try setting(groupCoordinatorAppendLingerMs, "ONCE_GROUP_COORDINATOR_APPEND_LINGER_MS") {
            guard v >= 0 else { throw ValidationError("--group-coordinator-append-linger-ms must not be negative") }
            config.groupCoordinatorAppendLingerMs = v
        }
        if let v = try setting(groupConsumerSessionTimeoutMs, "ONCE_GROUP_CONSUMER_SESSION_TIMEOUT_MS") {
            guard v > 0 else { throw ValidationError("--group-consumer-session-timeout-ms must be positive") }
            config.groupConsumerSessionTimeoutMs = v
        }
        if let v = setting(groupConsumerAssignors, "ONCE_GROUP_CONSUMER_ASSIGNORS") {
            let names = v.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard !names.isEmpty, names.allSatisfy(BrokerConfig.serverAssignorNames.contains) else {
                throw ValidationError(
                    "--group-consumer-assignors takes \(BrokerConfig.serverAssignorNames.joined(separator: ", ")), not '\(v)'")
            }
            config.groupConsumerAssignors = names
        }
        if let v = try setting(groupConsumerMaxSize, "ONCE_GROUP_CONSUMER_MAX_SIZE") {
            guard v > 0 else { throw ValidationError("--group-consumer-max-size must be positive") }
            config.groupConsumerMaxSize = v
        }
        if let v = setting(groupConsumerMigrationPolicy, "ONCE_GROUP_CONSUMER_MIGRATION_POLICY") {
            // Kafka reads the policy case-insensitively.
            guard let policy = ConsumerGroupMigrationPolicy(rawValue: v.lowercased()) else {
                throw ValidationError("--group-consumer-migration-policy takes "
                    + ConsumerGroupMigrationPolicy.allCases.map(\.rawValue).joined(separator: ", ") + ", not '\(v)'")
            }
            config.groupConsumerMigrationPolicy = policy
        }
        if config.groupConsumerHeartbeatIntervalMs >= config.groupConsumerSessionTimeoutMs {
            throw ValidationError("--group-consumer-heartbeat-interval-ms must be below --group-consumer-session-timeout-ms")
        }
        if let v = try setting(offsetsRetentionMinutes, "ONCE_OFFSETS_RETENTION_MINUTES") {
            guard v > 0 else { throw ValidationError("--offsets-retention-minutes must be positive") }
            config.offsetsRetentionMinutes = v
        }
        if let v = try setting(logCleanerBackoffMs, "ONCE_LOG_CLEANER_BACKOFF_MS") {
            guard v > 0 else { throw ValidationError("--log-cleaner-backoff-ms must be positive") }
            config.cleanerBackoffMs = v
        }
        if let v = try setting(logCleanerIoMaxBytesPerSecond, "ONCE_LOG_CLEANER_IO_MAX_BYTES_PER_SECOND") {
            guard v > 0 else { throw ValidationError("--log-cleaner-io-max-bytes-per-second must be positive") }
            config.cleanerIoMaxBytesPerSecond = v
        }
        if let v = try setting(logCleanerDedupeBufferSize, "ONCE_LOG_CLEANER_DEDUPE_BUFFER_SIZE") {
            guard v >= OffsetMap.minimumBytes else {
                throw ValidationError("--log-cleaner-dedupe-buffer-size must be at least \(OffsetMap.minimumBytes) (one key)")
            }
            config.cleanerDedupeBufferBytes = v
        }
        if let v = try setting(transactionMaxTimeoutMs, "ONCE_TRANSACTION_MAX_TIMEOUT_MS") {
            guard v > 0 else { throw ValidationError("--transaction-max-timeout-ms must be positive") }
            config.transactionMaxTimeoutMs = v
        }
        if let v = try setting(transactionTimeoutCheckIntervalMs, "ONCE_TRANSACTION_TIMEOUT_CHECK_INTERVAL_MS") {
            guard v > 0 else { throw ValidationError("--transaction-timeout-check-interval-ms must be positive") }
            config.transactionTimeoutCheckIntervalMs = v
        }
        if let v = try setting(producerIdExpirationMs, "ONCE_PRODUCER_ID_EXPIRATION_MS") {
            guard v > 0 else { throw ValidationError("--producer-id-expiration-ms must be positive") }
            config.producerIdExpirationMs = v
        }
        try applyLimits(&config)
        try sasl.apply(to: &config.sasl)
        if let v = try setting(maxPartitionsPerRequest, "ONCE_MAX_PARTITIONS_PER_REQUEST") {
            guard v > 0 else { throw ValidationError("--max-partitions-per-request must be positive") }
            config.maxPartitionsPerRequest = v
        }
        if let v = try setting(maxPartitions, "ONCE_MAX_PARTITIONS") {
            guard v > 0 else { throw ValidationError("--max-partitions must be positive") }
            config.maxPartitions = v
        }
        try applySecurity(&config)
        return config
    }

    private func applySecurity(_ config: inout BrokerConfig) throws {
        if let v = setting(authorizer, "ONCE_AUTHORIZER") {
            switch v.lowercased() {
            case "on": config.authorizerEnabled = true
            case "off": config.authorizerEnabled = false
            default: throw ValidationError("--authorizer takes on or off, not '\(v)'")
            }
        }
        if let v = setting(superUsers, "ONCE_SUPER_USERS") {
            config.superUsers = try v.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                .map { text in
                    guard let principal = KafkaPrincipal(parsing: text) else {
                        throw ValidationError("--super-users takes TYPE:NAME principals separated by ';', not '\(text)'")
                    }
                    return principal
                }
        }
        if let v = setting(allowEveryoneIfNoAclFound, "ONCE_ALLOW_EVERYONE_IF_NO_ACL_FOUND") {
            guard let b = Bool(v.lowercased()) else {
                throw ValidationError("--allow-everyone-if-no-acl-found takes true or false, not '\(v)'")
            }
            config.allowEveryoneIfNoAclFound = b
        }
    }

    /// `--listeners` in Kafka's form, or the `--listen` shorthand for one PLAINTEXT listener.
    /// The command line wins over the environment as a whole; both forms from the same source
    /// would leave it unclear which addresses the operator meant.
    private func makeListeners() throws -> [Listener] {
        let flagGiven = listen != nil || advertisedListener != nil || listeners != nil
        let environment = ProcessInfo.processInfo.environment
        func pick(_ flag: String?, _ variable: String) -> String? {
            flagGiven ? flag : environment[variable].flatMap { $0.isEmpty ? nil : $0 }
        }
        let shorthand = pick(listen, "ONCE_LISTEN")
        let shorthandAdvertised = pick(advertisedListener, "ONCE_ADVERTISED_LISTENER")
        guard let text = pick(listeners, "ONCE_LISTENERS") else {
            if setting(advertisedListeners, "ONCE_ADVERTISED_LISTENERS") != nil || setting(listenerSecurityProtocolMap, "ONCE_LISTENER_SECURITY_PROTOCOL_MAP") != nil {
                throw ValidationError("--advertised-listeners and --listener-security-protocol-map need --listeners")
            }
            let bind = try shorthand.map { try address($0, "--listen") } ?? BrokerConfig().listeners[0].address
            return [.plaintext(bind, advertised: try shorthandAdvertised.map { try address($0, "--advertised-listener") })]
        }
        guard shorthand == nil, shorthandAdvertised == nil else {
            throw ValidationError("--listen/--advertised-listener are a shorthand for --listeners; give one form, not both")
        }
        do {
            let map = try setting(listenerSecurityProtocolMap, "ONCE_LISTENER_SECURITY_PROTOCOL_MAP").map(Listener.parseProtocolMap)
                ?? Listener.defaultProtocolMap
            var parsed = try Listener.parseList(text, protocolMap: map)
            if let advertised = setting(advertisedListeners, "ONCE_ADVERTISED_LISTENERS") {
                parsed = try Listener.advertise(advertised, on: parsed)
            }
            return parsed
        } catch let error as Listener.ParseError {
            throw ValidationError(error.description)
        }
    }

    /// The TLS material, when a certificate or key is given; both are needed together.
    private func makeTLS() throws -> BrokerTLS? {
        let certificate = setting(sslCertificateLocation, "ONCE_BROKER_SSL_CERTIFICATE_LOCATION")
        let key = setting(sslKeyLocation, "ONCE_BROKER_SSL_KEY_LOCATION")
        let clientAuth = try setting(sslClientAuth, "ONCE_BROKER_SSL_CLIENT_AUTH").map { text in
            guard let mode = BrokerTLS.ClientAuth(rawValue: text.lowercased()) else {
                throw ValidationError("--ssl-client-auth takes none, requested or required, not '\(text)'")
            }
            return mode
        }
        // Kafka's way to turn the check off is the empty value, so an empty variable counts as given.
        let identification = try (sslEndpointIdentificationAlgorithm
            ?? ProcessInfo.processInfo.environment["ONCE_BROKER_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM"]).map { text in
                guard let algorithm = BrokerTLS.EndpointIdentification(rawValue: text.lowercased()) else {
                    throw ValidationError("--ssl-endpoint-identification-algorithm takes https or an empty value, not '\(text)'")
                }
                return algorithm
            }
        guard let certificate, let key else {
            if certificate != nil || key != nil {
                throw ValidationError("--ssl-certificate-location and --ssl-key-location go together")
            }
            if clientAuth != nil || identification != nil || setting(sslCaLocation, "ONCE_BROKER_SSL_CA_LOCATION") != nil {
                throw ValidationError("--ssl-client-auth, --ssl-ca-location and --ssl-endpoint-identification-algorithm need --ssl-certificate-location and --ssl-key-location")
            }
            return nil
        }
        var tls = BrokerTLS(certificateLocation: certificate, keyLocation: key)
        tls.keyPassword = setting(sslKeyPassword, "ONCE_BROKER_SSL_KEY_PASSWORD")
        tls.caLocation = setting(sslCaLocation, "ONCE_BROKER_SSL_CA_LOCATION")
        if let clientAuth { tls.clientAuth = clientAuth }
        if let identification { tls.endpointIdentification = identification }
        return tls
    }

    private func applyLimits(_ config: inout BrokerConfig) throws {
        func positive<T: LosslessStringConvertible & Comparable & Numeric>(_ flag: T?, _ env: String, _ name: String) throws -> T? {
            guard let v = try setting(flag, env) else { return nil }
            guard v > 0 else { throw ValidationError("--\(name) must be positive") }
            return v
        }
        if let v = try positive(maxOpenFiles, "ONCE_MAX_OPEN_FILES", "max-open-files") { config.maxOpenFiles = v }
        if let v = try positive(ioThreads, "ONCE_IO_THREADS", "io-threads") { config.ioThreads = v }
        if let v = try setting(autoCreateMaxPartitions, "ONCE_AUTO_CREATE_MAX_PARTITIONS") {
            guard v >= 0 else { throw ValidationError("--auto-create-max-partitions must not be negative") }
            config.autoCreateMaxPartitions = v
        }
        if let v = try positive(autoCreatePartitionsPerSecond, "ONCE_AUTO_CREATE_PARTITIONS_PER_SECOND", "auto-create-partitions-per-second") {
            config.autoCreatePartitionsPerSecond = v
        }
        if let v = try positive(fetchMaxBytes, "ONCE_FETCH_MAX_BYTES", "fetch-max-bytes") { config.fetchMaxBytes = v }
        if let v = try positive(queuedMaxRequestBytes, "ONCE_QUEUED_MAX_REQUEST_BYTES", "queued-max-request-bytes") {
            config.queuedMaxRequestBytes = v
        }
        guard config.queuedMaxRequestBytes >= config.maxRequestSize else {
            throw ValidationError(
                "--queued-max-request-bytes (\(config.queuedMaxRequestBytes)) must be at least --max-request-size (\(config.maxRequestSize)), or a largest request could never be read")
        }
        if let v = try positive(requestReadTimeoutMs, "ONCE_REQUEST_READ_TIMEOUT_MS", "request-read-timeout-ms") {
            config.requestReadTimeoutMs = v
        }
        if let v = try positive(connectionsMaxIdleMs, "ONCE_CONNECTIONS_MAX_IDLE_MS", "connections-max-idle-ms") {
            config.connectionsMaxIdleMs = v
        }
        if let v = try positive(maxConnections, "ONCE_MAX_CONNECTIONS", "max-connections") { config.maxConnections = v }
        if let v = try positive(maxConnectionsPerIp, "ONCE_MAX_CONNECTIONS_PER_IP", "max-connections-per-ip") {
            config.maxConnectionsPerIp = v
        }
    }

    private func applyPostgresTimings(_ config: inout BrokerConfig) throws {
        if let v = try setting(postgresCommitLingerMs, "ONCE_POSTGRES_COMMIT_LINGER_MS") {
            guard v >= 0 else { throw ValidationError("--postgres-commit-linger-ms must not be negative") }
            config.postgresCommitLingerMs = v
        }
        if let v = try setting(postgresReconnectBackoffMs, "ONCE_POSTGRES_RECONNECT_BACKOFF_MS") {
            guard v > 0 else { throw ValidationError("--postgres-reconnect-backoff-ms must be positive") }
            config.postgresReconnectBackoffMs = v
        }
        if let v = try setting(postgresReconnectBackoffMaxMs, "ONCE_POSTGRES_RECONNECT_BACKOFF_MAX_MS") {
            config.postgresReconnectBackoffMaxMs = v
        }
        if let v = try setting(postgresRequestTimeoutMs, "ONCE_POSTGRES_REQUEST_TIMEOUT_MS") {
            // libpq's poll takes an Int32 of milliseconds.
            guard v > 0, v <= Int64(Int32.max) else {
                throw ValidationError("--postgres-request-timeout-ms must be between 1 and \(Int32.max)")
            }
            config.postgresRequestTimeoutMs = v
        }
        guard config.postgresReconnectBackoffMaxMs >= config.postgresReconnectBackoffMs else {
            throw ValidationError(
                "--postgres-reconnect-backoff-max-ms (\(config.postgresReconnectBackoffMaxMs)) must be at least --postgres-reconnect-backoff-ms (\(config.postgresReconnectBackoffMs))")
        }
    }

    private func setting(_ flag: String?, _ env: String) -> String? {
        flag ?? ProcessInfo.processInfo.environment[env].flatMap { $0.isEmpty ? nil : $0 }
    }

    private func setting<T: LosslessStringConvertible>(_ flag: T?, _ env: String) throws -> T? {
        if let flag { return flag }
        guard let text = setting(nil as String?, env) else { return nil }
        guard let value = T(text) else { throw ValidationError("\(env)='\(text)' is not a valid value") }
        return value
    }

    private func positive(_ flag: Int?, _ env: String) throws -> Int? {
        guard let value = try setting(flag, env) else { return nil }
        guard value > 0 else { throw ValidationError("\(env) must be positive, got \(value)") }
        return value
    }

    private func address(_ text: String, _ flag: String) throws -> HostPort {
        guard let hp = HostPort(parsing: text) else { throw ValidationError("\(flag) takes HOST:PORT, not '\(text)'") }
        return hp
    }

    private func flushPolicy(_ text: String) throws -> FlushPolicy {
        switch text {
        case "none": return .none
        case "always": return .always
        default:
            if text.hasPrefix("interval:"), let ms = Int64(text.dropFirst("interval:".count)), ms > 0 {
                return .interval(milliseconds: ms)
            }
            throw ValidationError("--flush takes none, always or interval:MS, not '\(text)'")
        }
    }
}
