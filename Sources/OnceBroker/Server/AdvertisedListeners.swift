import Foundation
import Synchronization

/// The address each listener tells its clients to connect to. A listener bound to port 0 learns
/// its port only once bound, so the table is filled at start and completed after binding; a
/// client is always answered with the listener it came through, or it would be sent to a port
/// speaking another protocol.
final class AdvertisedListeners: Sendable {
    private let table: Mutex<[String: HostPort]>
    private let first: String

    init(_ listeners: [Listener]) {
        precondition(!listeners.isEmpty, "a broker needs at least one listener")
        table = Mutex(Dictionary(uniqueKeysWithValues: listeners.map { ($0.name, Self.advertised($0, boundPort: nil)) }))
        first = listeners[0].name
    }

    /// Records the port a listener actually bound, for listeners that advertise what they bind.
    func bound(_ listener: Listener, port: Int) {
        table.withLock { $0[listener.name] = Self.advertised(listener, boundPort: port) }
    }

    /// The address for clients of `listenerName`; an in-process caller with no listener of its
    /// own (tests) gets the first listener's.
    func address(for listenerName: String) -> HostPort {
        table.withLock { $0[listenerName] ?? $0[first]! }
    }

    /// Kafka's `advertised.listeners` value, every listener in order.
    func kafkaForm(_ listeners: [Listener]) -> String {
        listeners.map { "\($0.name)://\(address(for: $0.name))" }.joined(separator: ",")
    }

    /// A wildcard bind is advertised under the machine's host name, as Kafka does.
    private static func advertised(_ listener: Listener, boundPort: Int?) -> HostPort {
        if let advertised = listener.advertised { return advertised }
        let host = listener.address.host
        let wildcard = host == "0.0.0.0" || host == "::"
        return HostPort(
            host: wildcard ? ProcessInfo.processInfo.hostName : host, port: boundPort ?? listener.address.port)
    }
}
