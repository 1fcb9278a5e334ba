import Foundation
import KafkaProtocol
import Logging
import NIOCore
import Testing

@testable import OncePostgres

@testable import OnceStorage

/// Valid v2 batches for the tests, built with KafkaProtocol's encoder.
enum TestBatches {
    static let baseTime: Int64 = 1_700_000_000_000

    /// A batch of `records` records whose values say which batch they belong to.
    static func batch(records: Int = 1, timestamp: Int64 = baseTime, valueSize: Int = 16, tag: Int = 0) -> ByteBuffer {
        let rs = (0..<records).map { i in
            Record(
                timestampDelta: Int64(i), offsetDelta: Int32(i), key: Array("k\(i)".utf8),
                value: Array("tag\(tag)-record\(i)-".utf8) + [UInt8](repeating: UInt8(truncatingIfNeeded: tag), count: valueSize))
        }
        // A producer's batches all start at offset 0; the log assigns the real ones.
        return RecordBatch.encode(records: rs, baseOffset: 0, baseTimestamp: timestamp)
    }

    static func concat(_ parts: [ByteBuffer]) -> ByteBuffer {
        var out = ByteBuffer()
        for var part in parts { out.writeBuffer(&part) }
        return out
    }

    /// Decodes a read result (checking every CRC) into (baseOffset, lastOffset, first value) per batch.
    static func decode(_ buffer: ByteBuffer) throws -> [RecordBatch] {
        try RecordBatch.decodeAll(from: buffer)
    }

    static func offsets(_ buffer: ByteBuffer) throws -> [ClosedRange<Int64>] {
        try decode(buffer).map { $0.header.baseOffset...$0.header.lastOffset }
    }
}

/// A fresh directory under the system temp directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() throws {
        path = NSTemporaryDirectory() + "once-storage-tests-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// The engines the conformance suite runs over.
enum Engine: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory
    case file
    /// The file engine with a handle cache of one descriptor: nearly every access evicts another
    /// segment's descriptor and reopens its own, so the suite proves lazily opened files behave.
    case fileOneHandle
    /// The PostgreSQL engine, in a schema of its own per test; skipped when
    /// ONCE_TEST_POSTGRES_URL is unset (`source scripts/start-services.sh` sets it).
    case postgres

    var testDescription: String { rawValue }

    /// The engines with a log cleaner: all of them.
    static let compacting: [Engine] = allCases

    /// Runs `body` against a fresh storage of this engine and closes it afterwards.
    func with<R>(_ body: (any LogStorage) throws -> R) throws -> R {
        switch self {
        case .memory:
            return try body(MemoryLogStorage())
        case .file, .fileOneHandle:
            let dir = try TemporaryDirectory()
            defer { dir.remove() }
            let storage = try makeFileStorage(dir.path)
            defer { try? storage.close() }
            return try body(storage)
        case .postgres:
            let (storage, drop) = try Self.makePostgresStorage()
            defer { drop() }
            return try body(storage)
        }
    }

    static var postgresURL: String? { ProcessInfo.processInfo.environment["ONCE_TEST_POSTGRES_URL"] }

    /// A PostgreSQL engine over a fresh schema, and what removes it. Its partitions keep no
    /// committed batch in memory unless told otherwise, so every suite over it reads what
    /// committed from the table.
    static func makePostgresStorage(cacheBytes: Int = 1) throws -> (PostgresLogStorage, () -> Void) {
        let environment = ProcessInfo.processInfo.environment
        guard let url = environment["ONCE_TEST_POSTGRES_URL"], !url.isEmpty else {
            // CI starts the services, so there a missing database is a failure, not a skip.
            if environment["ONCE_REQUIRE_SERVICES"] == "1" { throw StorageError.io("ONCE_TEST_POSTGRES_URL is unset") }
            try Test.cancel("ONCE_TEST_POSTGRES_URL is unset: source scripts/start-services.sh to run the postgres engine")
        }
        let schema = "test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        let storage = try PostgresLogStorage(url: url, nodeId: 1, schema: schema, cacheBytes: cacheBytes, logger: quietLogger)
        return (storage, {
            try? storage.close()
            try? PostgresLogStorage.dropSchema(url: url, schema: schema)
        })
    }
}

extension Engine {
    func makeFileStorage(_ path: String, flushPolicy: FlushPolicy = .none) throws -> FileLogStorage {
        try FileLogStorage(
            directory: path, flushPolicy: flushPolicy,
            maxOpenFiles: self == .fileOneHandle ? 1 : FileLogStorage.defaultMaxOpenFiles, logger: quietLogger)
    }
}

let quietLogger: Logger = {
    var logger = Logger(label: "once.storage.tests")
    logger.logLevel = .critical
    return logger
}()

extension PartitionLog {
    /// Appends `count` single-record batches stamped baseTime + i, one append each.
    @discardableResult
    func appendBatches(_ count: Int, records: Int = 1, valueSize: Int = 16, firstTag: Int = 0) throws -> [AppendResult] {
        try (0..<count).map { i in
            try append(
                TestBatches.batch(
                    records: records, timestamp: TestBatches.baseTime + Int64(firstTag + i), valueSize: valueSize,
                    tag: firstTag + i))
        }
    }
}

extension StorageError {
    var isOffsetOutOfRange: Bool {
        if case .offsetOutOfRange = self { return true }
        return false
    }
}
