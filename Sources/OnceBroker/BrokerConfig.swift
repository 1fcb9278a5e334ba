import NIOCore
import OnceCore
import OncePostgres
import OnceStorage

/// Everything `once broker` can be told. Defaults follow Kafka's where Kafka has one.
public struct BrokerConfig: Sendable {
    /// Where the file engine keeps its segments and metadata.
    /// Default: `./data`.
    public var dataDirectory: String = "data"
    /// Storage engine: `.file` for real use, `.memory` for tests that need no disk.
    /// Default: `.file`.
    public var storage: StorageEngine = .file
    /// The sockets clients connect to, each with its security protocol and the address Metadata
    /// hands to the clients that came through it (Kafka's `listeners` and `advertised.listeners`).
    /// Default: one PLAINTEXT listener on `127.0.0.1:9092`.
    public var listeners: [Listener] = [.plaintext(HostPort(host: "127.0.0.1", port: 9092))]
    /// This broker's node id. Default: 1.
    public var nodeId: Int32 = 1
    /// Kafka's `broker.rack`, reported in Metadata and DescribeCluster. Default: none.
    public var rack: String? = nil
    /// Create a topic the first time Metadata or Produce names it, as Kafka's
    /// `auto.create.topics.enable`. Default: true.
    public var autoCreateTopics: Bool = true
    /// Partitions of an auto-created topic, or of one created with -1 partitions (`num.partitions`).
    /// Default: 1.
    public var defaultPartitions: Int32 = 1
    /// Frames above this size close the connection (`socket.request.max.bytes`). Default: 100 MiB.
    public var maxRequestSize: Int = 100 * 1024 * 1024
    /// When appended data is fsynced. Default: `.none` (page cache), as Kafka.
    public var flushPolicy: FlushPolicy = .none
    /// Certificate, key and client authentication of the SSL and SASL_SSL listeners; required
    /// when there is one. Default: nil.
    public var tls: BrokerTLS?
    /// Address of the Prometheus `/metrics` endpoint; nil disables it. Default: nil.
    public var metricsListen: HostPort?
    /// Whether `/metrics` may listen on an address other machines reach. It is unauthenticated and
    /// names every topic, group and transactional id, so by default only loopback is allowed.
    /// Default: false.
    public var metricsAllowRemote: Bool = false
    /// How often retention and segment age are checked (`log.retention.check.interval.ms`).
    /// Default: 5 minutes.
    public var retentionCheckIntervalMs: Int64 = 300_000
    /// How long the log cleaner waits between passes over the compacted partitions
    /// (`log.cleaner.backoff.ms`). Default: 15 s.
    public var cleanerBackoffMs: Int64 = 15_000
    /// The most bytes per second the log cleaner reads and writes together
    /// (`log.cleaner.io.max.bytes.per.second`); nil for no limit. Default: nil, as Kafka's.
    public var cleanerIoMaxBytesPerSecond: Double?
    /// The most memory a cleaner pass's offset map takes (`log.cleaner.dedupe.buffer.size`): 24
    /// bytes a key, so a pass over more distinct keys than fit cleans part of the backlog and
    /// leaves the rest to the next. Default: 128 MiB, as Kafka's (about 5.6 million keys a pass).
    public var cleanerDedupeBufferBytes: Int = FileLogStorage.defaultDedupeBufferBytes
    /// Largest fetch wait honoured, so a client cannot park a request forever. Default: 30 s.
    public var maxFetchWaitMs: Int32 = 30_000
    /// How long a producer id's state is kept after its last write (`producer.id.expiration.ms`).
    /// Default: 1 day.
    public var producerIdExpirationMs: Int64 = 86_400_000
    /// How often idle producer ids are expired (`producer.id.expiration.check.interval.ms`).
    /// Default: 10 minutes.
    public var producerIdExpirationCheckIntervalMs: Int64 = 600_000
    /// How often changed producer-state tables are snapshotted, bounding the log a restart must
    /// replay. Default: 30 s.
    public var producerSnapshotIntervalMs: Int64 = 30_000
    /// How long the first rebalance of a new or empty group waits for more members to join
    /// (`group.initial.rebalance.delay.ms`). Default: 3 s.
    public var groupInitialRebalanceDelayMs: Int32 = 3_000
    /// Whether KIP-848's consumer group protocol is served (ConsumerGroupHeartbeat/Describe and
    /// `group.version` 1 advertised) besides the classic one (`group.coordinator.rebalance.protocols`
    /// containing `consumer`). Default: true.
    public var consumerGroupProtocolEnabled: Bool = true
    /// The `transaction.version` finalized in ApiVersions (Kafka sets it with `kafka-features` or
    /// `--feature` at format time): clients that follow it, as the Java client and OnceClient do,
    /// use transactions V2 only at 2. Requests are served by their own version whatever it is, as
    /// Kafka serves them. 0, 1 or 2. Default: 2.
    public var transactionVersion: Int16 = 2
    /// The `transaction.version` levels this broker implements.
    public static let transactionVersions: ClosedRange<Int16> = 0...2
    /// How often KIP-848 members heartbeat (`group.consumer.heartbeat.interval.ms`). Default: 5 s.
    public var groupConsumerHeartbeatIntervalMs: Int32 = 5_000
    /// How long a ConsumerGroupHeartbeat that changed the group waits before it is answered
    /// (`group.coordinator.append.linger.ms`, Kafka 4.0's 10 ms). Kafka's coordinator holds such
    /// answers while it batches its writes, and librdkafka 2.16 relies on that pause: answered at
    /// once, a revocation lands between an application's subscribe and unsubscribe and librdkafka
    /// loses its rejoin (rd_kafka_rebalance_op_incr resets rkcg_rebalance_rejoin), so the member
    /// never heartbeats again. 0 answers at once. Default: 10 ms.
    public var groupCoordinatorAppendLingerMs: Int32 = 10
    /// How long a KIP-848 member may stay silent before it is removed (`group.consumer.session.timeout.ms`).
    /// Default: 45 s.
    public var groupConsumerSessionTimeoutMs: Int32 = 45_000
    /// The server-side assignors, the first the default (`group.consumer.assignors`). Default: uniform, range.
    public var groupConsumerAssignors: [String] = ["uniform", "range"]
    /// Most members of one KIP-848 group (`group.consumer.max.size`). Default: unbounded.
    public var groupConsumerMaxSize: Int = Int.max
    /// Whether groups with members convert between the classic and consumer protocols
    /// (`group.consumer.migration.policy`: bidirectional, upgrade, downgrade, disabled). Default: bidirectional.
    public var groupConsumerMigrationPolicy: ConsumerGroupMigrationPolicy = .bidirectional
    /// How long an empty group's committed offsets are kept (`offsets.retention.minutes`).
    /// Default: 7 days.
    public var offsetsRetentionMinutes: Int64 = 10_080
    /// How often expired offsets are removed (`offsets.retention.check.interval.ms`). Default: 10 min.
    public var offsetsRetentionCheckIntervalMs: Int64 = 600_000
    /// Largest transaction timeout a producer may ask for (`transaction.max.timeout.ms`).
    /// Default: 15 minutes.
    public var transactionMaxTimeoutMs: Int32 = 900_000
    /// How long an idle transactional id is remembered (`transactional.id.expiration.ms`).
    /// Default: 7 days.
    public var transactionalIdExpirationMs: Int64 = 604_800_000
    /// How often open transactions are checked against their timeouts. Default: 1 s.
    public var transactionTimeoutCheckIntervalMs: Int64 = 1_000
    /// Segment descriptors kept open at once; the least recently used are closed and reopened on
    /// demand (Kafka keeps every segment open and relies on `ulimit -n`). Default: 1000.
    public var maxOpenFiles: Int = 1000
    /// Auto-creation stops once the broker holds this many partitions; explicit CreateTopics is not
    /// limited (Kafka has no such cap; KIP-578 proposed `max.partitions`). Default: 10,000.
    public var autoCreateMaxPartitions: Int = 10_000
    /// Partitions per second auto-creation may add, with a burst of one second's worth (Kafka's
    /// KIP-599 `controller_mutation_rate` quota, which is unlimited there). Default: 100.
    public var autoCreatePartitionsPerSecond: Double = 100
    /// Largest Fetch response, whatever the client asks for (`fetch.max.bytes`); the first batch
    /// is returned even when larger, so a consumer always progresses. Default: 55 MiB.
    public var fetchMaxBytes: Int = 57_671_680
    /// Request bytes buffered across all connections, partial frames included, before the broker
    /// stops reading sockets until requests complete (`queued.max.request.bytes`). Must be at
    /// least `maxRequestSize`, so any single allowed request can complete. Default: 128 MiB.
    public var queuedMaxRequestBytes: Int = 128 * 1024 * 1024
    /// A connection whose request frame has begun but not finished within this time is closed,
    /// so a client trickling bytes cannot hold a buffer forever (Kafka has no equivalent).
    /// Default: 30 s.
    public var requestReadTimeoutMs: Int64 = 30_000
    /// A connection with no bytes in either direction and nothing in flight for this long is
    /// closed (`connections.max.idle.ms`). Default: 10 minutes.
    public var connectionsMaxIdleMs: Int64 = 600_000
    /// Connections open at once; more are closed on accept (`max.connections`). Default: 10,000.
    public var maxConnections: Int = 10_000
    /// Connections open at once from one IP address (`max.connections.per.ip`). Default: unlimited.
    public var maxConnectionsPerIp: Int = Int.max
    /// Most partitions one CreateTopics may ask for, all topics together; a larger request is
    /// refused whole with POLICY_VIOLATION, as Kafka's controller refuses an operation of more than
    /// 10,000 records (its `MAX_RECORDS_PER_USER_OP`). Default: 10,000.
    public var maxPartitionsPerRequest: Int = 10_000
    /// Most partitions this broker holds, all topics together (KIP-578's `max.broker.partitions`);
    /// a topic that would pass it is refused with POLICY_VIOLATION. Default: 50,000.
    public var maxPartitions: Int = 50_000
    /// Check every request against the stored ACLs (Kafka's `authorizer.class.name` set to
    /// StandardAuthorizer). Off, every principal may do anything and the ACL APIs answer
    /// SECURITY_DISABLED, as Kafka without an authorizer. Default: false.
    public var authorizerEnabled: Bool = false
    /// Principals the authorizer allows everything, whatever the ACLs say (`super.users`), in
    /// `User:NAME` form. Default: none.
    public var superUsers: [KafkaPrincipal] = []
    /// Allow an operation on a resource no ACL names at all (`allow.everyone.if.no.acl.found`).
    /// Default: false.
    public var allowEveryoneIfNoAclFound: Bool = false
    /// SASL mechanisms, failure delay and rate limit, and the credentials stored at start.
    public var sasl = SaslConfig()
    /// Event-loop threads. Default: the number of cores.
    public var threads: Int = System.coreCount
    /// Threads that run blocking disk work: fsyncs under `--flush always`, index writes,
    /// snapshots, retention (Kafka's `num.io.threads`, whose request handlers do that work
    /// themselves). Default: 8.
    public var ioThreads: Int = 8

    public init() {}

    public enum StorageEngine: String, Sendable, CaseIterable {
        case file, memory, postgres
    }
    /// The postgres engine's database, as a libpq URL. Default: none.
    public var postgresURL: String?
    /// A postgres-engine broker whose heartbeat is this old is dead to the others, and its leases
    /// with it (Kafka's `broker.session.timeout.ms`). Default: 9000.
    public var brokerSessionTimeoutMs: Int64 = 9000
    /// How often a postgres-engine broker renews its membership and leases (Kafka's
    /// `broker.heartbeat.interval.ms`); several beats fit in a session so one slow beat is no death.
    /// Default: 2000.
    public var brokerHeartbeatIntervalMs: Int64 = 2000
    /// The listener other brokers reach this one through, for transaction markers and KIP-890
    /// checks (Kafka's `inter.broker.listener.name`); every broker of the cluster must have it.
    /// PLAINTEXT or SSL without `interBrokerSasl`, SASL_PLAINTEXT or SASL_SSL with it; SSL and
    /// SASL_SSL use `tls` for both ends (see `interBrokerProblem`). Default: the first PLAINTEXT
    /// listener, or with credentials the first SASL_PLAINTEXT one, as Kafka's default
    /// `security.inter.broker.protocol=PLAINTEXT`: a TLS one is used only when named.
    public var interBrokerListenerName: String?
    /// How this broker authenticates to the others' SASL_PLAINTEXT or SASL_SSL listener (Kafka's
    /// `sasl.mechanism.inter.broker.protocol` and the listener's JAAS username and password).
    /// Default: none.
    public var interBrokerSasl: (mechanism: SaslMechanism, username: String, password: String)?
    /// How long a request to another broker may wait for its answer (Kafka's `request.timeout.ms`
    /// of the inter-broker channel). Default: 30000.
    public var interBrokerRequestTimeoutMs: Int64 = 30_000
    /// How long an undelivered transaction marker waits before it is sent again, doubled per
    /// failure up to the max (Kafka's `retry.backoff.ms` and `retry.backoff.max.ms`).
    /// Defaults: 100 and 1000.
    public var transactionMarkerRetryBackoffMs: Int64 = 100
    public var transactionMarkerRetryBackoffMaxMs: Int64 = 1000

    /// The listener named by `interBrokerListenerName`, or the first of the protocol the
    /// credentials call for.
    public var interBrokerListener: Listener? {
        if let name = interBrokerListenerName { return listeners.first { $0.name == name } }
        let wanted: SecurityProtocol = interBrokerSasl == nil ? .plaintext : .saslPlaintext
        return listeners.first { $0.securityProtocol == wanted }
    }

    /// Why the inter-broker listener cannot carry this broker's requests to the others, checked
    /// at start so a cluster never runs with markers that can never be delivered; nil when it
    /// can, or when nothing asks for one (no name, no credentials: the PLAINTEXT default, if any).
    public var interBrokerProblem: String? {
        guard interBrokerListenerName != nil || interBrokerSasl != nil else { return nil }
        guard let listener = interBrokerListener else {
            let wanted = interBrokerSasl == nil ? SecurityProtocol.plaintext : .saslPlaintext
            return "no \(interBrokerListenerName ?? wanted.rawValue) listener for the brokers to reach each other through"
        }
        let kind = listener.securityProtocol
        if interBrokerSasl == nil, kind.usesSASL {
            return "--inter-broker-listener-name \(listener.name) is \(kind.rawValue): give --inter-broker-sasl-username for the brokers to authenticate with"
        }
        if interBrokerSasl != nil, !kind.usesSASL {
            return "--inter-broker-sasl-username needs a SASL_PLAINTEXT or SASL_SSL inter-broker listener, and \(listener.name) is \(kind.rawValue)"
        }
        if kind.usesTLS {
            guard let tls else {
                return "the \(kind.rawValue) inter-broker listener \(listener.name) needs --ssl-certificate-location and --ssl-key-location: the broker presents them to the others too"
            }
            if tls.caLocation == nil { return InterBrokerTLS.missingAuthorities }
        }
        return nil
    }

    /// How long a postgres-engine broker lets appends nobody waits for yet gather before it commits
    /// them (Kafka has none: its log appends are not transactions). Default: 20.
    public var postgresCommitLingerMs: Int64 = 20
    /// The first pause before reconnecting to an unreachable database, doubled per failure
    /// (Kafka's `reconnect.backoff.ms`, for its connections to other brokers). Default: 50.
    public var postgresReconnectBackoffMs: Int64 = 50
    /// The longest of those pauses (Kafka's `reconnect.backoff.max.ms`). Default: 2000.
    public var postgresReconnectBackoffMaxMs: Int64 = 2000
    /// How long a postgres-engine broker waits for the database to answer one statement before it
    /// drops the connection and reconnects (Kafka's `request.timeout.ms`, for a client's request).
    /// Default: 30000.
    public var postgresRequestTimeoutMs: Int64 = 30_000

    /// The postgres engine's timings; its leases last a session, as renewals and takeovers make them.
    var postgresTuning: PostgresTuning {
        var tuning = PostgresTuning()
        tuning.commitLinger = .milliseconds(postgresCommitLingerMs)
        tuning.reconnectBackoff = .milliseconds(postgresReconnectBackoffMs)
        tuning.reconnectBackoffMax = .milliseconds(postgresReconnectBackoffMaxMs)
        tuning.leaseLength = .milliseconds(brokerSessionTimeoutMs)
        tuning.requestTimeout = .milliseconds(postgresRequestTimeoutMs)
        return tuning
    }
    /// Committed batches each postgres-engine partition keeps in memory; older reads are queries.
    /// Per partition, so one busy partition never evicts the tail another partition's consumers
    /// read (Kafka's nearest: none, it leaves this to the OS page cache). Default: 1 MiB.
    public var postgresCacheBytes: Int = 1 << 20
}

/// A `host:port` pair as given on the command line.
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT` (IPv6 hosts in brackets: `[::1]:9092`).
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]),
            (0...65535).contains(port)
        else { return nil }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        guard !host.isEmpty else { return nil }
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// Re-exported so the command line can name flush policies without importing storage.
public typealias FlushPolicy = OnceStorage.FlushPolicy
