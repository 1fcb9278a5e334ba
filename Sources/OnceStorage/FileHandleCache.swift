import Glibc
import NIOCore
import Synchronization

/// The open descriptors of every segment of one storage, least recently used evicted first, so the
/// number of descriptors stays near `capacity` however many partitions and segments exist. An
/// evicted `PosixFile` closes only when its last holder lets go: a read, write or fsync that took
/// the descriptor before the eviction finishes on it, and a segment unlinked by retention stays
/// readable to a fetch that already holds it.
final class FileHandleCache: Sendable {
    let capacity: Int

    private struct Entry {
        var file: PosixFile
        var newer: Int?
        var older: Int?
    }

    private struct State {
        var entries: [Int: Entry] = [:]
        var newest: Int?
        var oldest: Int?
        var nextKey = 0
        var opens = 0

        mutating func unlink(_ key: Int) -> Entry? {
            guard let entry = entries.removeValue(forKey: key) else { return nil }
            if let newer = entry.newer { entries[newer]!.older = entry.older } else { newest = entry.older }
            if let older = entry.older { entries[older]!.newer = entry.newer } else { oldest = entry.newer }
            return entry
        }

        mutating func pushNewest(_ key: Int, _ file: PosixFile) {
            entries[key] = Entry(file: file, newer: nil, older: newest)
            if let newest { entries[newest]!.newer = key }
            newest = key
            if oldest == nil { oldest = key }
        }

        /// Moves `key` to the newest end and returns its descriptor, or nil if it is not open.
        mutating func touch(_ key: Int) -> PosixFile? {
            guard newest != key else { return entries[key]?.file }
            guard let entry = unlink(key) else { return nil }
            pushNewest(key, entry.file)
            return entry.file
        }

        mutating func popOldest() -> PosixFile? {
            guard let oldest else { return nil }
            return unlink(oldest)?.file
        }
    }

    private let state = Mutex(State())

    init(capacity: Int) {
        precondition(capacity > 0, "the handle cache needs room for at least one file")
        self.capacity = capacity
    }

    /// Descriptors the cache holds now (others may still be open in the hands of readers).
    var openCount: Int { state.withLock { $0.entries.count } }
    /// open(2) calls made so far: how often an evicted file had to be reopened.
    var openCalls: Int { state.withLock { $0.opens } }

    func newKey() -> Int {
        state.withLock { s in
            defer { s.nextKey += 1 }
            return s.nextKey
        }
    }

    /// The open descriptor for `key`, opening `path` if it is not cached. The open runs outside the
    /// lock; evicted descriptors are released outside it too, so no close(2) blocks other partitions.
    func descriptor(_ key: Int, path: String, create: Bool = false) throws -> PosixFile {
        if let file = state.withLock({ $0.touch(key) }) { return file }
        let opened = try openMakingRoom(path, create: create)
        var evicted: [PosixFile] = []
        let file: PosixFile = state.withLock { s in
            s.opens += 1
            // Another thread may have opened it meanwhile; keep theirs, ours closes on return.
            if let existing = s.touch(key) { return existing }
            s.pushNewest(key, opened)
            while s.entries.count > capacity, let old = s.popOldest() { evicted.append(old) }
            return opened
        }
        evicted.removeAll()
        return file
    }

    /// Forgets `key`'s descriptor, so a deleted file's space is freed once its readers finish.
    func evict(_ key: Int) {
        let entry = state.withLock { $0.unlink(key) }
        _ = entry
    }

    /// When the process runs out of descriptors (sockets share the limit), gives up half of the
    /// cached ones and tries once more rather than failing the append or fetch.
    private func openMakingRoom(_ path: String, create: Bool) throws -> PosixFile {
        switch PosixFile.attemptOpen(path, create: create) {
        case .success(let file):
            return file
        case .failure(let code) where code.rawValue == EMFILE || code.rawValue == ENFILE:
            var released: [PosixFile] = []
            state.withLock { s in
                for _ in 0..<max(1, s.entries.count / 2) {
                    guard let old = s.popOldest() else { break }
                    released.append(old)
                }
            }
            guard !released.isEmpty else { throw PosixFile.error("open", path, code.rawValue) }
            released.removeAll()
            return try PosixFile.openFile(path, create: create)
        case .failure(let code):
            throw PosixFile.error("open", path, code.rawValue)
        }
    }
}

/// A segment's log file as named by its path: the descriptor comes from the storage's handle cache
/// when an operation needs it. Callers that must keep reading after releasing the partition lock
/// take `open()` under the lock and read from the returned `PosixFile`.
final class SegmentFile: Sendable {
    let path: String
    private let cache: FileHandleCache
    private let key: Int

    init(path: String, cache: FileHandleCache) {
        self.path = path
        self.cache = cache
        self.key = cache.newKey()
    }

    /// Creates the file (or opens it if it exists) and leaves it in the cache.
    static func create(path: String, cache: FileHandleCache) throws -> SegmentFile {
        let file = SegmentFile(path: path, cache: cache)
        _ = try cache.descriptor(file.key, path: path, create: true)
        return file
    }

    func open() throws -> PosixFile { try cache.descriptor(key, path: path) }

    /// Drops the cached descriptor; holders of one keep it.
    func release() { cache.evict(key) }

    func size() throws -> Int { try open().size() }
    func modificationTimeMs() throws -> Int64 { try open().modificationTimeMs() }
    func read(at offset: Int, count: Int) throws -> ByteBuffer { try open().read(at: offset, count: count) }
    func truncate(to size: Int) throws { try open().truncate(to: size) }
    /// fdatasync through any descriptor of the file covers the pages every descriptor wrote, so a
    /// file evicted between its append and its sync is reopened and synced correctly.
    func sync() throws { try open().sync() }
}
