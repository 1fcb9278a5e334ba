import CLibPQ
import Glibc

/// One libpq connection. libpq blocks, so a connection belongs to the one thread that owns it
/// (a `PostgresConnectionThread`); nothing else touches it.
final class PostgresConnection {
    private var handle: OpaquePointer?
    /// Statements sent and answered: the round trips the engine's metric counts.
    private(set) var roundTrips = 0

    /// How long a statement may go unanswered before the connection is taken for dead. libpq
    /// would wait forever on a server that hung or a network that silently drops packets, and
    /// the thread waiting is the one that commits, heartbeats and fences: past this, the
    /// connection is closed and the caller's usual reconnect-and-reconcile path runs, as after
    /// any broken connection (the statement's outcome is unknown).
    private let answerTimeoutMs: Int32

    /// Connects and makes `schema` the connection's namespace, creating it if needed. A connection
    /// attempt gives up after libpq's `connect_timeout` of 5 s unless the URL sets one.
    init(url: String, schema: String, answerTimeout: Duration = PostgresTuning().requestTimeout) throws {
        answerTimeoutMs = Int32(clamping: answerTimeout.wholeMilliseconds)
        // Keywords are read in order and the URL (expanded from dbname) comes last, so what it sets wins.
        let keywords = ["connect_timeout", "dbname"], values = ["5", url]
        handle = withCStrings(keywords) { k in withCStrings(values) { v in PQconnectdbParams(k, v, 1) } }
        guard let handle, PQstatus(handle) == CONNECTION_OK, PQsetnonblocking(handle, 1) == 0 else {
            let message = handle.map { String(cString: PQerrorMessage($0)) } ?? "out of memory"
            if let handle { PQfinish(handle) }
            self.handle = nil
            throw PostgresError.connection(message.trimmingTrailingNewlines)
        }
        let quoted = "\"" + schema.replacingOccurrences(of: "\"", with: "\"\"") + "\""
        try execute("SET client_min_messages TO warning; CREATE SCHEMA IF NOT EXISTS \(quoted); SET search_path TO \(quoted)")
    }

    deinit {
        if let handle { PQfinish(handle) }
    }

    /// Whether the server is still there as far as libpq knows (it notices on the next call).
    var isBroken: Bool { handle.map { PQstatus($0) != CONNECTION_OK } ?? true }

    /// Runs statements without parameters (the simple protocol, so several may be sent at once).
    func execute(_ sql: String) throws {
        let result = try answer(sent: handle != nil && PQsendQuery(handle, sql) == 1)
        defer { PQclear(result) }
        roundTrips += 1
        try check(result, sql)
    }

    /// Runs one statement with binary parameters; rows come back in text form, or binary when
    /// `binaryResults` (for bytea columns).
    @discardableResult
    func query(_ sql: String, _ parameters: [PostgresValue] = [], binaryResults: Bool = false) throws -> PostgresRows {
        let types = parameters.map(\.oid)
        let lengths = parameters.map { Int32($0.bytes.count) }
        let formats = [Int32](repeating: 1, count: parameters.count)
        let sent: Bool = withPointers(parameters.map(\.bytes)) { values in
            handle != nil
                && PQsendQueryParams(handle, sql, Int32(parameters.count), types, values, lengths, formats, binaryResults ? 1 : 0) == 1
        }
        let result = try answer(sent: sent)
        roundTrips += 1
        do {
            try check(result, sql)
        } catch {
            PQclear(result)
            throw error
        }
        return PostgresRows(result: result!)
    }

    /// Sends what PQsend* queued and waits for the statement's results within the answer timeout;
    /// the last result, as PQexec returns it (the server stops at a failing statement, so that is
    /// the failure). Nil only when libpq could not even queue the statement.
    private func answer(sent: Bool) throws -> OpaquePointer? {
        guard sent, let handle else { return nil }
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(answerTimeoutMs))
        var flushing = PQflush(handle)
        while flushing == 1 {
            try wait(on: handle, writable: true, until: deadline)
            flushing = PQflush(handle)
        }
        guard flushing == 0 else { return nil }
        var last: OpaquePointer?
        while true {
            while PQisBusy(handle) == 1 {
                try wait(on: handle, writable: false, until: deadline)
                guard PQconsumeInput(handle) == 1 else {
                    PQclear(last)
                    return nil
                }
            }
            guard let next = PQgetResult(handle) else { return last }
            PQclear(last)
            last = next
        }
    }

    private func wait(on handle: OpaquePointer, writable: Bool, until deadline: ContinuousClock.Instant) throws {
        var descriptor = pollfd(fd: PQsocket(handle), events: Int16(writable ? POLLOUT : POLLIN), revents: 0)
        while true {
            let left = ContinuousClock.now.duration(to: deadline)
            let ms = max(0, Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
            let ready = poll(&descriptor, 1, ms)
            if ready > 0 { return }
            if ready < 0, errno == EINTR { continue }
            guard ready == 0 else { break }
            PQfinish(handle)
            self.handle = nil
            throw PostgresError.connection("no answer from the database within \(answerTimeoutMs) ms; connection closed")
        }
        PQfinish(handle)
        self.handle = nil
        throw PostgresError.connection("waiting for the database failed: errno \(errno)")
    }

    private func check(_ result: OpaquePointer?, _ sql: String) throws {
        guard let result else { throw PostgresError.connection(String(cString: PQerrorMessage(handle)).trimmingTrailingNewlines) }
        let status = PQresultStatus(result)
        guard status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK else { return }
        let message = String(cString: PQresultErrorMessage(result)).trimmingTrailingNewlines
        let sqlState = PQresultErrorField(result, Int32(UInt8(ascii: "C"))).map { String(cString: $0) } ?? ""
        if isBroken || sqlState.hasPrefix("08") || sqlState.hasPrefix("57P") || sqlState.isEmpty {
            throw PostgresError.connection(message)
        }
        // A failure inside an explicit transaction (the schema's) would refuse every later
        // statement on this connection until it is rolled back.
        if PQtransactionStatus(handle) == PQTRANS_INERROR { PQclear(PQexec(handle, "ROLLBACK")) }
        throw PostgresError.statement(sqlState: sqlState, message: message)
    }
}

/// Errors from the database, split by what the caller can conclude.
enum PostgresError: Error, CustomStringConvertible {
    /// The connection failed or broke: a statement in flight may or may not have committed.
    case connection(String)
    /// The server refused a statement; nothing it did remains.
    case statement(sqlState: String, message: String)

    var description: String {
        switch self {
        case .connection(let message): "postgres connection: \(message)"
        case .statement(let state, let message): "postgres \(state): \(message)"
        }
    }
}

/// The rows of one answered statement.
final class PostgresRows {
    private let result: OpaquePointer

    init(result: OpaquePointer) { self.result = result }
    deinit { PQclear(result) }

    var count: Int { Int(PQntuples(result)) }
    func isNull(_ row: Int, _ column: Int) -> Bool { PQgetisnull(result, Int32(row), Int32(column)) == 1 }

    func text(_ row: Int, _ column: Int) -> String {
        String(cString: PQgetvalue(result, Int32(row), Int32(column)))
    }

    func int(_ row: Int, _ column: Int) -> Int64 { Int64(text(row, column)) ?? 0 }

    /// A column's raw bytes: a bytea's contents when results are binary.
    func bytes(_ row: Int, _ column: Int) -> [UInt8] {
        let length = Int(PQgetlength(result, Int32(row), Int32(column)))
        guard length > 0, let value = PQgetvalue(result, Int32(row), Int32(column)) else { return [] }
        return value.withMemoryRebound(to: UInt8.self, capacity: length) { Array(UnsafeBufferPointer(start: $0, count: length)) }
    }

    /// A binary int8 column.
    func binaryInt64(_ row: Int, _ column: Int) -> Int64 {
        bytes(row, column).reduce(0) { $0 << 8 | Int64($1) }
    }

    /// A binary int4 column.
    func binaryInt32(_ row: Int, _ column: Int) -> Int32 {
        Int32(truncatingIfNeeded: bytes(row, column).reduce(Int64(0)) { $0 << 8 | Int64($1) })
    }
}

private func withPointers<R>(_ arrays: [[UInt8]], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    var pointers: [UnsafePointer<CChar>?] = []
    func nest(_ index: Int) -> R {
        guard index < arrays.count else { return body(pointers) }
        return arrays[index].withUnsafeBufferPointer { buffer in
            // An empty value still needs a non-null pointer, or libpq takes it for SQL NULL.
            let base = buffer.baseAddress.map { UnsafeRawPointer($0) } ?? UnsafeRawPointer(emptyValue)
            pointers.append(base.assumingMemoryBound(to: CChar.self))
            return nest(index + 1)
        }
    }
    return nest(0)
}

nonisolated(unsafe) private let emptyValue = UnsafeMutableRawPointer.allocate(byteCount: 1, alignment: 1)

extension String {
    fileprivate var trimmingTrailingNewlines: String {
        var s = self
        while s.last == "\n" { s.removeLast() }
        return s
    }

    fileprivate func replacingOccurrences(of target: String, with replacement: String) -> String {
        split(separator: Character(target), omittingEmptySubsequences: false).joined(separator: replacement)
    }
}

/// Calls `body` with a C array of the strings, NULL-terminated as libpq's keyword lists are.
private func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    return body(copies.map { UnsafePointer($0) } + [nil])
}
