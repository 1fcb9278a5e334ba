import Logging
import NIOPosix
import OnceBroker
import ServiceLifecycle

/// `once broker --http-listen`: the operator's web console, server-rendered HTML pages and the
/// JSON API under `/api/` that they mirror. It reads the broker only through `BrokerView`
/// snapshots, so a slow browser never holds up a Kafka request.
public struct ConsoleService: Service {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
        /// Bytes of one header field, and of all of them together, before a request is refused
        /// with 431. Default: 16 KiB.
        public var maxRequestHeaderBytes = 16 * 1024
        /// Header fields in one request before it is refused with 431. Default: 64.
        public var maxRequestHeaders = 64
        /// Body bytes before a request is refused with 413; the console's one POST has none.
        /// Default: 4096.
        public var maxRequestBodyBytes = 4096
        /// Console connections open at once; more are closed as they are accepted. Default: 64.
        public var maxConnections = 64
        /// A console connection with no bytes either way for this long is closed. Default: 60 s.
        public var connectionsMaxIdleMs: Int64 = 60_000
        /// How often consumer-group lag is sampled for the charts. Default: 5 s.
        public var lagSampleInterval: Duration = .seconds(5)
        /// Samples kept per group (memory only; a restart starts the charts afresh). Default: 720 (an hour at 5 s).
        public var lagSamplesKept: Int = 720

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    let configuration: Configuration
    let view: BrokerView
    let logger: Logger
    let onReady: @Sendable (_ port: Int) -> Void

    /// - Parameter onReady: called with the bound port once the console accepts connections.
    public init(
        configuration: Configuration, view: BrokerView, logger: Logger,
        onReady: @escaping @Sendable (_ port: Int) -> Void = { _ in }
    ) {
        self.configuration = configuration
        self.view = view
        self.logger = logger
        self.onReady = onReady
    }

    public func run() async throws {
        let history = LagHistory(samplesKept: configuration.lagSamplesKept)
        let routes = ConsoleRoutes(view: view, history: history, logger: logger, threadPool: .singleton)
        let server = ConsoleHTTPServer(configuration: configuration, router: routes.router(), logger: logger)
        let sampler = LagSampler(
            view: view, history: history, interval: configuration.lagSampleInterval, threadPool: .singleton, logger: logger)
        let onReady = self.onReady
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask { try await sampler.run() }
            try await server.run(onReady: onReady)
            // The server returns on graceful shutdown; the sampler ends with it.
            group.cancelAll()
        }
    }
}
