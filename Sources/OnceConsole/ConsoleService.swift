import Hummingbird
import Logging
import NIOCore
import OnceBroker
import ServiceLifecycle

/// `once broker --http-listen`: the operator's web console, server-rendered HTML pages and the
/// JSON API under `/api/` that they mirror. It reads the broker only through `BrokerView`
/// snapshots, so a slow browser never holds up a Kafka request.
public struct ConsoleService: Service {
    public struct Configuration: Sendable {
        public var host: String
        public var port: Int
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
        let router = Router()
        ConsoleRoutes(view: view, history: history, logger: logger).register(on: router)
        let port = configuration.port
        let onReady = self.onReady
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(configuration.host, port: port), serverName: "once-console"),
            services: [LagSampler(view: view, history: history, interval: configuration.lagSampleInterval, logger: logger)],
            onServerRunning: { channel in onReady(channel.localAddress?.port ?? port) },
            logger: logger)
        try await app.run()
    }
}
