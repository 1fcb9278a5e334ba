import CSQLite

/// Why a SQLite call failed.
public struct SQLiteError: Error, Hashable, Sendable, CustomStringConvertible {
    public var code: Int32
    public var description: String
}

/// A value bound to or read from a SQLite statement.
public enum SQLiteValue: Hashable, Sendable {
    case integer(Int64)
    case text(String)
    case blob([UInt8])
    case null
}

/// A thin wrapper over one SQLite connection (the system library). Calls are synchronous and the
/// connection must be used by one task at a time, which the dedup store guarantees.
public final class SQLiteDatabase: @unchecked Sendable {
    private var handle: OpaquePointer?

    /// Opens (creating if needed) the database at `path`, in WAL mode with `synchronous=NORMAL`:
    /// a commit survives a process crash (the test's SIGKILL) without an fsync per transaction;
    /// only an OS crash can lose the last commits.
    public init(path: String, synchronousFull: Bool = false) throws {
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            sqlite3_close(handle)
            throw SQLiteError(code: rc, description: "open \(path): \(message)")
        }
        sqlite3_busy_timeout(handle, 5_000)
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=\(synchronousFull ? "FULL" : "NORMAL")")
    }

    deinit {
        sqlite3_close_v2(handle)
    }

    /// Runs one statement and returns its rows.
    @discardableResult
    public func execute(_ sql: String, _ bindings: [SQLiteValue] = []) throws -> [[SQLiteValue]] {
        var statement: OpaquePointer?
        try check(sqlite3_prepare_v2(handle, sql, -1, &statement, nil), sql)
        defer { sqlite3_finalize(statement) }
        for (i, value) in bindings.enumerated() {
            let index = Int32(i + 1)
            switch value {
            case .integer(let n): try check(sqlite3_bind_int64(statement, index, n), sql)
            case .text(let s):
                let bytes = Array(s.utf8)
                try check(bytes.withUnsafeBufferPointer {
                    $0.withMemoryRebound(to: CChar.self) { once_sqlite3_bind_text_copy(statement, index, $0.baseAddress, Int32($0.count)) }
                }, sql)
            case .blob(let b): try check(b.withUnsafeBytes { once_sqlite3_bind_blob_copy(statement, index, $0.baseAddress, Int32($0.count)) }, sql)
            case .null: try check(sqlite3_bind_null(statement, index), sql)
            }
        }
        var rows: [[SQLiteValue]] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { try check(rc, sql); break }
            let columns = sqlite3_column_count(statement)
            rows.append((0..<columns).map { column in
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: return .integer(sqlite3_column_int64(statement, column))
                case SQLITE_NULL: return .null
                case SQLITE_BLOB:
                    let count = Int(sqlite3_column_bytes(statement, column))
                    guard count > 0, let base = sqlite3_column_blob(statement, column) else { return .blob([]) }
                    return .blob(Array(UnsafeRawBufferPointer(start: base, count: count)))
                default:
                    return .text(String(cString: sqlite3_column_text(statement, column)))
                }
            })
        }
        return rows
    }

    /// Rows changed by the last INSERT, UPDATE or DELETE.
    public var changes: Int { Int(sqlite3_changes(handle)) }

    private func check(_ rc: Int32, _ sql: String) throws {
        guard rc == SQLITE_OK || rc == SQLITE_ROW || rc == SQLITE_DONE else {
            throw SQLiteError(code: rc, description: "\(String(cString: sqlite3_errmsg(handle))) in: \(sql)")
        }
    }
}
