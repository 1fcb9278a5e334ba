import Foundation
import OnceStorage
import Synchronization

/// Config overrides set through AlterConfigs/IncrementalAlterConfigs on resources that have no
/// topic metadata file to live in: this broker, the cluster-wide broker default, and consumer
/// groups. Kept as one state document, rewritten atomically on every change, so a restart shows
/// exactly what the last acknowledged change left. Topic overrides live with the topic instead.
final class DynamicConfigStore: Sendable {
    static let documentName = "dynamic-configs"

    struct Overrides: Codable, Equatable, Sendable {
        /// Per-broker overrides (resource name = this node's id).
        var broker: [String: String] = [:]
        /// Cluster-wide broker defaults (resource name "").
        var clusterDefault: [String: String] = [:]
        var groups: [String: [String: String]] = [:]
    }

    private let storage: any LogStorage
    private let state: Mutex<Overrides>

    init(storage: any LogStorage) throws {
        self.storage = storage
        var overrides = Overrides()
        if let bytes = try storage.readState(named: Self.documentName) {
            do {
                overrides = try JSONDecoder().decode(Overrides.self, from: Data(bytes))
            } catch {
                throw StorageError.corrupt("\(Self.documentName): \(error)")
            }
        }
        state = Mutex(overrides)
    }

    var current: Overrides { state.withLock { $0 } }

    /// Applies `change` and makes the result durable before it becomes visible; a failed write
    /// leaves the old overrides in place.
    func update(_ change: (inout Overrides) -> Void) throws {
        try state.withLock { overrides in
            var next = overrides
            change(&next)
            guard next != overrides else { return }
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            try storage.writeState(named: Self.documentName, Array(try encoder.encode(next)))
            overrides = next
        }
    }
}
