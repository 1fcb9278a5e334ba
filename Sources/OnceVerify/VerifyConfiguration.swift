import Logging
import OnceClient

/// What `once verify` runs against the cluster and for how long.
public struct VerifyConfiguration: Sendable {
    public var bootstrapServers: [BootstrapServer]
    /// How long the writers keep starting transactions. Default: 60 s.
    public var duration: Duration = .seconds(60)
    /// Transactional producers, each with its own transactional id. Default: 3.
    public var writers = 3
    /// Partitions of the input and of the output topic. Default: 3.
    public var partitions: Int32 = 3
    /// Replicas of each topic. Default: 1.
    public var replicationFactor: Int16 = 1
    /// Records per writer transaction, chosen uniformly from 1 up to this. Default: 10.
    public var maxTransactionSize = 10
    /// Share of writer transactions deliberately aborted, in percent (the processor aborts half
    /// as many). Default: 20.
    public var abortPercent = 20
    /// Every this many transactions, a writer starts a newer instance of its transactional id
    /// while a transaction is open and then tries to finish that transaction with the old one,
    /// which must be fenced. 0 turns it off. Default: 25.
    public var fenceEvery = 25
    /// A shell command run every `faultInterval` while the writers run (e.g. kill and restart
    /// a broker). Default: none.
    public var faultCommand: String?
    /// Default: 10 s.
    public var faultInterval: Duration = .seconds(10)
    /// How long the processor and the reader may take to catch up once the writers stop.
    /// Default: 60 s.
    public var drainTimeout: Duration = .seconds(60)
    /// The producers' `transaction.timeout.ms`: how long an abandoned transaction holds back
    /// the last stable offset. Default: 10 s.
    public var transactionTimeout: Duration = .seconds(10)
    /// Per request. Default: 5 s.
    public var requestTimeout: Duration = .seconds(5)
    /// Progress lines (topic names, faults, catching up). Default: discarded.
    public var log: @Sendable (String) -> Void = { _ in }
    /// The clients' own logging. The workload provokes errors on purpose (fenced zombies), so
    /// the default keeps them quiet. Default: `.critical`.
    public var clientLogLevel: Logger.Level = .critical
    /// What every client connection starts from (TLS, for one); its id and timeouts are set
    /// from this configuration. Default: `KafkaClientConfiguration()`.
    public var connection = KafkaClientConfiguration()

    public init(bootstrapServers: [BootstrapServer]) {
        self.bootstrapServers = bootstrapServers
    }

    func logger(_ label: String) -> Logger {
        var logger = Logger(label: label)
        logger.logLevel = clientLogLevel
        return logger
    }

    var clientConfiguration: KafkaClientConfiguration {
        var client = connection
        client.clientId = "once-verify"
        client.requestTimeout = requestTimeout
        client.connectTimeout = requestTimeout
        return client
    }

    func producerConfiguration(transactionalId: String?) -> ProducerConfiguration {
        var producer = ProducerConfiguration(bootstrapServers: bootstrapServers)
        producer.client = clientConfiguration
        producer.transactionalId = transactionalId
        producer.transactionTimeout = transactionTimeout
        producer.requestTimeout = requestTimeout
        producer.deliveryTimeout = requestTimeout * 3
        producer.linger = .milliseconds(2)
        return producer
    }

    func consumerConfiguration() -> ConsumerConfiguration {
        var consumer = ConsumerConfiguration(bootstrapServers: bootstrapServers)
        consumer.client = clientConfiguration
        consumer.isolationLevel = .readCommitted
        consumer.autoOffsetReset = .earliest
        consumer.enableAutoCommit = false
        return consumer
    }
}
