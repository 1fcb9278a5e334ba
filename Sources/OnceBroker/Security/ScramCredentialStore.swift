import Foundation
import OnceCore
import OnceCrypto
import OnceStorage
import Synchronization

/// Every user's SCRAM credentials (salt, iterations, StoredKey, ServerKey per mechanism; never a
/// password), the one store both SCRAM and PLAIN authenticate against. Kept as one state document
/// in the data directory, rewritten atomically on every change, so a restart sees exactly what the
/// last acknowledged AlterUserScramCredentials left.
final class ScramCredentialStore: Sendable {
    static let documentName = "scram-credentials"

    /// user -> mechanism name -> credential.
    typealias Table = [String: [String: ScramCredential]]

    /// One change of an AlterUserScramCredentials request, already validated.
    enum Change: Sendable {
        case upsert(user: String, mechanism: ScramMechanism, ScramCredential)
        case delete(user: String, mechanism: ScramMechanism)
    }

    private let storage: any LogStorage
    private let table: Mutex<Table>

    init(storage: any LogStorage) throws {
        self.storage = storage
        var loaded = Table()
        if let bytes = try storage.readState(named: Self.documentName) {
            do {
                loaded = try JSONDecoder().decode(Table.self, from: Data(bytes))
            } catch {
                throw StorageError.corrupt("\(Self.documentName): \(error)")
            }
        }
        table = Mutex(loaded)
    }

    func credential(user: String, mechanism: ScramMechanism) -> ScramCredential? {
        table.withLock { $0[user]?[mechanism.rawValue] }
    }

    /// The user's credentials by mechanism; empty for a user without any.
    func credentials(user: String) -> [ScramMechanism: ScramCredential] {
        table.withLock { table in
            var result: [ScramMechanism: ScramCredential] = [:]
            for (name, credential) in table[user] ?? [:] {
                if let mechanism = ScramMechanism(rawValue: name) { result[mechanism] = credential }
            }
            return result
        }
    }

    var users: [String] { table.withLock { $0.keys.sorted() } }

    /// Applies the changes together and makes them durable before they become visible; a failed
    /// write leaves every credential as it was.
    func apply(_ changes: [Change]) throws {
        try table.withLock { table in
            var next = table
            for change in changes {
                switch change {
                case .upsert(let user, let mechanism, let credential):
                    next[user, default: [:]][mechanism.rawValue] = credential
                case .delete(let user, let mechanism):
                    next[user]?[mechanism.rawValue] = nil
                    if next[user]?.isEmpty == true { next[user] = nil }
                }
            }
            guard next != table else { return }
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            try storage.writeState(named: Self.documentName, Array(try encoder.encode(next)))
            table = next
        }
    }
}

extension ScramCredentialStore {
    /// Stores `--add-scram` credentials, each with a fresh salt, replacing what the user had for
    /// that mechanism.
    func storeBootstrap(_ credentials: [ScramBootstrapCredential], hashing: LibCrypto) throws {
        guard !credentials.isEmpty else { return }
        try apply(
            credentials.map { bootstrap in
                let salt = LibCrypto.randomBytes(32)
                let formulas = ScramFormulas(bootstrap.mechanism, hashing: hashing)
                let salted = formulas.saltedPassword(bootstrap.password, salt: salt, iterations: bootstrap.iterations)
                return .upsert(
                    user: bootstrap.user, mechanism: bootstrap.mechanism,
                    formulas.credential(saltedPassword: salted, salt: salt, iterations: bootstrap.iterations))
            })
    }
}
