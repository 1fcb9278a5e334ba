import KafkaProtocol
import NIOConcurrencyHelpers
import OnceCore

/// The operator's window into a running broker: `BrokerService` attaches its broker once storage
/// is open and detaches it before storage closes; readers (the web console) ask for snapshots
/// and the one operator action. The lock guards only the reference, never a read of the broker.
public final class BrokerView: Sendable {
    private struct Attached {
        var broker: Broker
        var connections: ConnectionLimiter
        var startedAtMs: Int64
    }
    private let attached = NIOLockedValueBox<Attached?>(nil)

    public init() {}

    func attach(_ broker: Broker, connections: ConnectionLimiter) {
        attached.withLockedValue { $0 = Attached(broker: broker, connections: connections, startedAtMs: broker.clock()) }
    }

    func detach() {
        attached.withLockedValue { $0 = nil }
    }

    /// Nil while no broker is serving (starting up, or shut down).
    public func snapshot() throws -> BrokerSnapshot? {
        guard let a = attached.withLockedValue({ $0 }) else { return nil }
        let config = a.broker.config
        let health = BrokerSnapshot.Health(
            version: OnceVersion.string, clusterId: a.broker.clusterId, nodeId: config.nodeId,
            listen: config.listeners.map(\.description).joined(separator: " "), startedAtMs: a.startedAtMs,
            uptimeMs: max(0, a.broker.clock() - a.startedAtMs), openConnections: a.connections.openConnections)
        return try a.broker.snapshot(health: health)
    }

    /// Ends one partition's hanging transaction with an ABORT marker, under the same guard as
    /// WriteTxnMarkers from an admin client: INVALID_TXN_STATE while the coordinator considers it
    /// live, INVALID_PRODUCER_EPOCH for an epoch older than the partition's. Nil when no broker
    /// is serving.
    public func abortHanging(topic: String, partition: Int32, producerId: Int64, producerEpoch: Int16) throws -> ErrorCode? {
        guard let broker = attached.withLockedValue({ $0?.broker }) else { return nil }
        return try broker.transactions.abortHanging(
            TopicPartitionKey(topic, partition), producerId: producerId, producerEpoch: producerEpoch, now: broker.clock())
    }
}
