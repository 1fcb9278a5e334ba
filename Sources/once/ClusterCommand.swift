import ArgumentParser
import KafkaProtocol
import OnceClient

/// `once cluster info`: the first thing to check when a client cannot connect or sees the wrong
/// brokers: what the cluster advertises, not what the client was configured with.
struct ClusterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Show the cluster's id, controller and brokers.",
        subcommands: [Info.self]
    )

    struct Info: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Cluster id, controller, brokers as they advertise themselves, and this tool's version.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await client.withClient { client in
                let metadata = try await client.metadata(topics: [])
                print("Cluster id: \(metadata.clusterId ?? "-")")
                print("Controller: \(metadata.controllerId)")
                print("Brokers:    \(metadata.brokers.count)")
                for broker in metadata.brokers.sorted(by: { $0.nodeId < $1.nodeId }) {
                    var line = "\tBroker: \(broker.nodeId)\tAddress: \(broker.host):\(broker.port)"
                    if let rack = broker.rack { line += "\tRack: \(rack)" }
                    print(line)
                }
                print("Client:     once \(OnceVersion.string)")
            }
        }
    }
}

/// "3d04h", "2h05m", "4m09s", "12s": an age an operator reads at a glance.
func humanDuration(milliseconds: Int64) -> String {
    let seconds = max(0, milliseconds) / 1000
    let (d, h, m, s) = (seconds / 86_400, seconds / 3600 % 24, seconds / 60 % 60, seconds % 60)
    func two(_ n: Int64) -> String { n < 10 ? "0\(n)" : "\(n)" }
    if d > 0 { return "\(d)d\(two(h))h" }
    if h > 0 { return "\(h)h\(two(m))m" }
    if m > 0 { return "\(m)m\(two(s))s" }
    return "\(s)s"
}
