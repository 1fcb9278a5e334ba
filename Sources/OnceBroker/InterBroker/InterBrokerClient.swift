import KafkaProtocol
import NIOCore
import NIOPosix
import Synchronization

/// This broker's requests to the other brokers of its cluster, as Kafka's inter-broker channel
/// (TransactionMarkerChannelManager, AddPartitionsToTxnManager): one connection per node, opened
/// on first use from the address the ClusterView holds for the listener the brokers share,
/// replaced when it closes, and not retried sooner than a backoff after a failed connect.
///
/// The listener is Kafka's `inter.broker.listener.name`, given in `Settings.listenerName`: every
/// broker of the cluster must advertise it. On an SSL or SASL_SSL listener each connection is TLS
/// first (`Settings.tls`: the peer's certificate verified, this broker's own presented, as Kafka's
/// broker uses its keystore and truststore for its own connections too). On a SASL_PLAINTEXT or
/// SASL_SSL one, `Settings.sasl` holds the credentials each connection then authenticates with
/// before its first request (Kafka's `sasl.mechanism.inter.broker.protocol` and the listener's
/// JAAS login). Either way the peer's authorizer sees the cluster's principal: the certificate's
/// subject on SSL, the SASL user otherwise.
final class InterBrokerClient: Sendable {
    struct Settings: Sendable {
        /// Kafka's `inter.broker.listener.name`.
        var listenerName: String
        /// The header's client id, so a peer's logs name this broker.
        var clientId: String
        /// Kafka's `request.timeout.ms` for the inter-broker channel. Default: 30 s.
        var requestTimeout: TimeAmount = .seconds(30)
        /// Kafka's `reconnect.backoff.ms`, doubled per failed connect up to
        /// `reconnect.backoff.max.ms`. Defaults: 50 ms and 1 s, as Kafka's.
        var reconnectBackoff: TimeAmount = .milliseconds(50)
        var reconnectBackoffMax: TimeAmount = .seconds(1)
        /// Largest response frame accepted. Default: 100 MiB.
        var maxFrameSize: Int = 100 * 1024 * 1024
        /// Credentials for a SASL_PLAINTEXT or SASL_SSL inter-broker listener; nil on the others.
        var sasl: InterBrokerSasl?
        /// TLS for an SSL or SASL_SSL inter-broker listener; nil on the plaintext ones.
        var tls: InterBrokerTLS?
    }

    private enum Slot {
        case connected(InterBrokerConnection)
        /// A connect under way; every caller meanwhile waits for it rather than opening another.
        case connecting(EventLoopFuture<InterBrokerConnection>)
        /// A connect failed; none is tried again before `until`.
        case backingOff(failures: Int, until: NIODeadline)
    }

    private let settings: Settings
    private let cluster: any ClusterView
    private let group: any EventLoopGroup
    private let slots = Mutex<[Int32: Slot]>([:])

    init(settings: Settings, cluster: any ClusterView, group: any EventLoopGroup) {
        self.settings = settings
        self.cluster = cluster
        self.group = group
    }

    /// Sends `request` at `version` to the live broker `nodeId`. It fails with an
    /// `InterBrokerError`, or the decoding error of an answer not understood; the caller decides
    /// whether and when to ask again.
    func send<R: KafkaRequest>(_ request: R, version: Int16, to nodeId: Int32) async throws -> R.Response {
        let connection = try await connection(to: nodeId)
        do {
            return try await connection.send(request, version: version)
        } catch {
            // The handler fails a request only when its connection can carry nothing more (a
            // timeout, an answer out of step, a close), and a response that does not decode means
            // the stream is not understood: the next request opens a new connection in every case,
            // without waiting for the channel to report itself inactive.
            forget(nodeId, connection)
            connection.close()
            throw error
        }
    }

    /// Closes every connection; requests in flight fail.
    func shutdown() {
        let all = slots.withLock { slots in
            defer { slots = [:] }
            return slots.values
        }
        for case .connected(let connection) in all { connection.close() }
    }

    private func connection(to nodeId: Int32) async throws -> InterBrokerConnection {
        enum Next {
            case use(InterBrokerConnection)
            case wait(EventLoopFuture<InterBrokerConnection>)
            case connect(EventLoopPromise<InterBrokerConnection>, failures: Int)
            case refuse(InterBrokerError)
        }
        let now = NIODeadline.now()
        let next: Next = slots.withLock { slots in
            var failures = 0
            switch slots[nodeId] {
            case .connected(let connection) where connection.isActive:
                return .use(connection)
            case .connecting(let future):
                return .wait(future)
            case .backingOff(let count, let until):
                guard until <= now else {
                    return .refuse(InterBrokerError(kind: .backingOff, description: "broker \(nodeId) is in reconnect backoff"))
                }
                failures = count
            case .connected, nil:
                break
            }
            let promise = group.next().makePromise(of: InterBrokerConnection.self)
            slots[nodeId] = .connecting(promise.futureResult)
            return .connect(promise, failures: failures)
        }
        switch next {
        case .use(let connection):
            return connection
        case .wait(let future):
            return try await future.get()
        case .refuse(let error):
            throw error
        case .connect(let promise, let failures):
            do {
                let connection = try await open(nodeId)
                slots.withLock { $0[nodeId] = .connected(connection) }
                promise.succeed(connection)
                return connection
            } catch {
                let backoff = Self.backoff(failures: failures + 1, settings: settings)
                slots.withLock { $0[nodeId] = .backingOff(failures: failures + 1, until: NIODeadline.now() + backoff) }
                promise.fail(error)
                throw error
            }
        }
    }

    private func open(_ nodeId: Int32) async throws -> InterBrokerConnection {
        guard let member = cluster.member(nodeId) else {
            throw InterBrokerError(kind: .noEndpoint, description: "broker \(nodeId) is not a live member")
        }
        guard let address = member.endpoints[settings.listenerName] else {
            throw InterBrokerError(
                kind: .noEndpoint, description: "broker \(nodeId) has no \(settings.listenerName) listener")
        }
        return try await InterBrokerConnection.connect(
            host: address.host, port: address.port, clientId: settings.clientId,
            requestTimeout: settings.requestTimeout, maxFrameSize: settings.maxFrameSize, tls: settings.tls, sasl: settings.sasl,
            group: group)
    }

    private func forget(_ nodeId: Int32, _ connection: InterBrokerConnection) {
        slots.withLock { slots in
            if case .connected(let current) = slots[nodeId], current === connection { slots[nodeId] = nil }
        }
    }

    /// Kafka's exponential reconnect backoff: the base doubled per consecutive failure, capped.
    static func backoff(failures: Int, settings: Settings) -> TimeAmount {
        let exponent = min(max(failures - 1, 0), 20)
        let nanos = settings.reconnectBackoff.nanoseconds.multipliedReportingOverflow(by: Int64(1) << exponent)
        let capped = nanos.overflow ? settings.reconnectBackoffMax.nanoseconds
            : min(nanos.partialValue, settings.reconnectBackoffMax.nanoseconds)
        return .nanoseconds(capped)
    }
}
