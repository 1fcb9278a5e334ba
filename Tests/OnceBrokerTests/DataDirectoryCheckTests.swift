import Foundation
import Testing

@testable import OnceBroker

@Suite("Data directory check")
struct DataDirectoryCheckTests {
    @Test("parent paths, including the one-character relative name that crashed Foundation")
    func parents() {
        #expect(DataDirectoryCheck.parent(of: "d") == "")
        #expect(DataDirectoryCheck.parent(of: "data") == "")
        #expect(DataDirectoryCheck.parent(of: "a/b") == "a")
        #expect(DataDirectoryCheck.parent(of: "a/b/") == "a")
        #expect(DataDirectoryCheck.parent(of: "/d") == "/")
        #expect(DataDirectoryCheck.parent(of: "/") == "/")
        #expect(DataDirectoryCheck.parent(of: "/tmp//x") == "/tmp")
    }

    @Test("a missing one-character relative directory passes the check (it used to crash)")
    func shortRelativeName() throws {
        // The check creates nothing, so a name that does not exist in the working directory is safe
        // to ask about without changing directory (tests run in parallel in one process).
        let name = try #require("qxzjwvkyu".map(String.init).first { !FileManager.default.fileExists(atPath: $0) })
        try DataDirectoryCheck.check(name)
        try DataDirectoryCheck.check(name + "/e")
    }
}
