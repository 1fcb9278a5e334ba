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
        var ancestor = (directory as NSString).deletingLastPathComponent
        while !ancestor.isEmpty, !FileManager.default.fileExists(atPath: ancestor, isDirectory: &isDirectory) {
            let parent = (ancestor as NSString).deletingLastPathComponent
            if parent == ancestor { break }
            ancestor = parent
        }
        if ancestor.isEmpty { ancestor = "." }
        guard FileManager.default.fileExists(atPath: ancestor, isDirectory: &isDirectory) else { return }
        guard isDirectory.boolValue else {
            throw StartupError(description: "cannot create data directory \(directory): \(ancestor) is a file, not a directory")
        }
        try requireWritable(ancestor, "cannot create data directory \(directory): \(ancestor)")
    }

    private static func requireWritable(_ path: String, _ subject: String) throws {
        guard access(path, W_OK | X_OK) == 0 else {
            throw StartupError(description: "\(subject) is not writable: \(String(cString: strerror(errno)))")
        }
    }
}
