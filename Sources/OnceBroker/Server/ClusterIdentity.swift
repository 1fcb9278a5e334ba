import Foundation
import OnceStorage

/// The cluster id clients see in Metadata and DescribeCluster. It is stored in the data directory
/// so it stays the same across restarts, as Kafka's meta.properties does.
enum ClusterIdentity {
    static func loadOrCreate(directory: String) throws -> String {
        let url = URL(fileURLWithPath: directory).appendingPathComponent("cluster.id")
        if let existing = try? String(contentsOf: url, encoding: .utf8) {
            let id = existing.trimmingCharacters(in: .whitespacesAndNewlines)
            if !id.isEmpty { return id }
        }
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let id = random()
        try Data((id + "\n").utf8).write(to: url, options: .atomic)
        return id
    }

    /// The same id kept as a state document, for engines without a data directory (postgres),
    /// so every broker over one database is one cluster.
    static func loadOrCreate(in storage: any LogStorage) throws -> String {
        if let bytes = try storage.readState(named: "cluster-id"), !bytes.isEmpty {
            return String(decoding: bytes, as: UTF8.self)
        }
        let id = random()
        try storage.writeState(named: "cluster-id", Array(id.utf8))
        return id
    }

    /// 16 random bytes in URL-safe base64 without padding: the shape of Kafka's cluster ids.
    static func random() -> String {
        var g = SystemRandomNumberGenerator()
        let bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &g) }
        return Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
}
