import Foundation
import OnceCore
import OnceStorage
import Synchronization

/// The broker's ACLs: one state document in the data directory (as DynamicConfigStore keeps config
/// overrides), rewritten atomically on every change, and the compiled `AclAuthorizer` every request
/// reads. A change is durable before any request sees it, and replacing the authorizer is the cache
/// invalidation: decisions never read a half-applied change.
final class AclStore: Sendable {
    static let documentName = "acls"

    private struct Document: Codable {
        var bindings: [AclBinding]
    }

    private let storage: any LogStorage
    private let state: Mutex<AclAuthorizer>

    init(storage: any LogStorage, superUsers: Set<String>, allowEveryoneIfNoAclFound: Bool) throws {
        self.storage = storage
        var bindings: [AclBinding] = []
        if let bytes = try storage.readState(named: Self.documentName) {
            do {
                bindings = try JSONDecoder().decode(Document.self, from: Data(bytes)).bindings
            } catch {
                throw StorageError.corrupt("\(Self.documentName): \(error)")
            }
        }
        state = Mutex(AclAuthorizer(bindings: bindings, superUsers: superUsers, allowEveryoneIfNoAclFound: allowEveryoneIfNoAclFound))
    }

    /// The authorizer as of now; a request takes it once and decides all its resources with it.
    var current: AclAuthorizer { state.withLock { $0 } }

    /// Adds bindings (already validated); ones already stored are kept once.
    func add(_ bindings: [AclBinding]) throws {
        try update { $0 + bindings }
    }

    /// Removes every binding a filter matches and returns, per filter, what it removed.
    func remove(matching filters: [AclBindingFilter]) throws -> [[AclBinding]] {
        var removed: [[AclBinding]] = []
        try update { bindings in
            removed = filters.map { filter in bindings.filter(filter.matches) }
            return bindings.filter { binding in !filters.contains { $0.matches(binding) } }
        }
        return removed
    }

    private func update(_ change: ([AclBinding]) -> [AclBinding]) throws {
        try state.withLock { authorizer in
            let next = authorizer.replacingBindings(change(authorizer.bindings))
            guard next.bindings != authorizer.bindings else { return }
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            try storage.writeState(named: Self.documentName, Array(try encoder.encode(Document(bindings: next.bindings))))
            authorizer = next
        }
    }
}
