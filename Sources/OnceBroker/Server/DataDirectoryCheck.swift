#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation

/// Names what is wrong with a data directory path before anything is created in it, so an
/// operator reads "X is a file, not a directory" instead of Foundation's error for the first
/// file the broker happened to open.
enum DataDirectoryCheck {
    static func check(_ directory: String) throws {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw StartupError(description: "data directory \(directory) is a file, not a directory")
            }
            try requireWritable(directory, "data directory \(directory)")
            return
        }
        // Missing directories are created with their parents; what can stop that is the nearest
        // ancestor that exists: a file, or a directory this user cannot write.
        var ancestor = parent(of: directory)
        while !ancestor.isEmpty, !FileManager.default.fileExists(atPath: ancestor, isDirectory: &isDirectory) {
            let next = parent(of: ancestor)
            if next == ancestor { break }
            ancestor = next
        }
        if ancestor.isEmpty { ancestor = "." }
        guard FileManager.default.fileExists(atPath: ancestor, isDirectory: &isDirectory) else { return }
        guard isDirectory.boolValue else {
            throw StartupError(description: "cannot create data directory \(directory): \(ancestor) is a file, not a directory")
        }
        try requireWritable(ancestor, "cannot create data directory \(directory): \(ancestor)")
    }

    /// The path without its last component ("" for a bare relative name, "/" for the root).
    /// Foundation's `deletingLastPathComponent` crashed on Linux for a one-character relative path.
    static func parent(of path: String) -> String {
        var path = Substring(path)
        while path.count > 1, path.hasSuffix("/") { path = path.dropLast() }
        guard let slash = path.lastIndex(of: "/") else { return "" }
        if slash == path.startIndex { return "/" }
        var parent = path[..<slash]
        while parent.count > 1, parent.hasSuffix("/") { parent = parent.dropLast() }
        return String(parent)
    }

    private static func requireWritable(_ path: String, _ subject: String) throws {
        guard access(path, W_OK | X_OK) == 0 else {
            throw StartupError(description: "\(subject) is not writable: \(String(cString: strerror(errno)))")
        }
    }
}
