import Foundation
import Testing

@testable import OnceStorage

@Suite("State documents")
struct StateDocumentTests {
    @Test(arguments: Engine.allCases)
    func writeReadReplaceRemove(engine: Engine) throws {
        try engine.with { storage in
            #expect(try storage.readState(named: "producer-ids") == nil)
            try storage.writeState(named: "producer-ids", [1, 2, 3])
            #expect(try storage.readState(named: "producer-ids") == [1, 2, 3])
            try storage.writeState(named: "producer-ids", [])
            #expect(try storage.readState(named: "producer-ids") == [])
            try storage.removeState(named: "producer-ids")
            #expect(try storage.readState(named: "producer-ids") == nil)
            try storage.removeState(named: "never-written")
            #expect(throws: StorageError.self) { try storage.writeState(named: "../escape", [1]) }
        }
    }

    @Test func survivesReopen() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        do {
            let storage = try FileLogStorage(directory: dir.path, logger: quietLogger)
            try storage.writeState(named: "snap", Array(repeating: 7, count: 1000))
            // No close: a kill -9 after a write returned must keep it.
        }
        let reopened = try FileLogStorage(directory: dir.path, logger: quietLogger)
        defer { try? reopened.close() }
        #expect(try reopened.readState(named: "snap") == Array(repeating: 7, count: 1000))
    }

    @Test func corruptionIsDetected() throws {
        let dir = try TemporaryDirectory()
        defer { dir.remove() }
        let storage = try FileLogStorage(directory: dir.path, logger: quietLogger)
        defer { try? storage.close() }
        try storage.writeState(named: "snap", [1, 2, 3, 4])
        let path = dir.path + "/__state/snap"
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path)))
        bytes[5] ^= 0xFF
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        #expect(throws: StorageError.self) { try storage.readState(named: "snap") }
    }
}
