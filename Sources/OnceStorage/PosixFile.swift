import Glibc
import NIOCore

/// An open file whose descriptor closes when the last holder lets go. Readers take a reference under
/// the partition lock and pread after releasing it, so retention can unlink a segment while a fetch
/// is still reading it without the descriptor being closed (and reused) under the reader.
final class PosixFile: Sendable {
    let fd: Int32
    let path: String

    private init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit {
        _ = close(fd)
    }

    /// Opens for reading and writing, creating the file when `create` is set.
    static func openFile(_ path: String, create: Bool) throws -> PosixFile {
        switch attemptOpen(path, create: create) {
        case .success(let file): return file
        case .failure(let code): throw PosixFile.error("open", path, code.rawValue)
        }
    }

    struct Errno: Error { let rawValue: Int32 }

    /// The open, or the errno that refused it, so callers can tell "out of descriptors" apart.
    static func attemptOpen(_ path: String, create: Bool) -> Result<PosixFile, Errno> {
        var flags = O_RDWR | O_CLOEXEC
        if create { flags |= O_CREAT }
        while true {
            let fd = open(path, flags, 0o644)
            if fd >= 0 { return .success(PosixFile(fd: fd, path: path)) }
            if errno == EINTR { continue }
            return .failure(Errno(rawValue: errno))
        }
    }

    static func error(_ operation: String, _ path: String, _ code: Int32 = errno) -> StorageError {
        .io("\(operation) \(path): \(String(cString: strerror(code)))")
    }

    func size() throws -> Int {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw PosixFile.error("fstat", path) }
        return Int(st.st_size)
    }

    /// Last modification time in milliseconds since the epoch.
    func modificationTimeMs() throws -> Int64 {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw PosixFile.error("fstat", path) }
        return Int64(st.st_mtim.tv_sec) * 1000 + Int64(st.st_mtim.tv_nsec) / 1_000_000
    }

    /// Reads up to `count` bytes at `offset` into a new buffer; fewer only at end of file.
    func read(at offset: Int, count: Int) throws -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        var done = 0
        while done < count {
            let n = buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count - done) { raw in
                pread(fd, raw.baseAddress, count - done, off_t(offset + done))
            }
            if n < 0 {
                if errno == EINTR { continue }
                throw PosixFile.error("pread", path)
            }
            if n == 0 { break }
            done += n
        }
        return buffer
    }

    /// Writes all readable bytes of `buffer` at `offset`.
    func write(_ buffer: ByteBuffer, at offset: Int) throws {
        try buffer.withUnsafeReadableBytes { raw in
            var iov = [iovec(iov_base: UnsafeMutableRawPointer(mutating: raw.baseAddress), iov_len: raw.count)]
            try writeFully(&iov, at: offset)
        }
    }

    /// Writes the iovecs back to back starting at `offset`, resuming after short writes and
    /// splitting at the kernel's iovec limit.
    func writeFully(_ iov: inout [iovec], at offset: Int) throws {
        var index = 0
        var position = offset
        while index < iov.count {
            if iov[index].iov_len == 0 {
                index += 1
                continue
            }
            let written = iov.withUnsafeMutableBufferPointer { p in
                pwritev(fd, p.baseAddress! + index, Int32(min(p.count - index, 1024)), off_t(position))
            }
            if written < 0 {
                if errno == EINTR { continue }
                throw PosixFile.error("pwritev", path)
            }
            position += written
            var remaining = written
            while remaining > 0 {
                if remaining >= iov[index].iov_len {
                    remaining -= iov[index].iov_len
                    index += 1
                } else {
                    iov[index].iov_base = iov[index].iov_base! + remaining
                    iov[index].iov_len -= remaining
                    remaining = 0
                }
            }
        }
    }

    func truncate(to size: Int) throws {
        while ftruncate(fd, off_t(size)) != 0 {
            if errno == EINTR { continue }
            throw PosixFile.error("ftruncate", path)
        }
    }

    /// Data and the size needed to read it back; the derived index files never need this.
    func sync() throws {
        while fdatasync(fd) != 0 {
            if errno == EINTR { continue }
            throw PosixFile.error("fdatasync", path)
        }
    }

    /// Makes a create, rename or unlink inside `directory` durable.
    static func syncDirectory(_ directory: String) throws {
        let fd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw PosixFile.error("open", directory) }
        defer { _ = close(fd) }
        while fsync(fd) != 0 {
            if errno == EINTR { continue }
            throw PosixFile.error("fsync", directory)
        }
    }

    /// Replaces `path` with `contents` so that a crash leaves either the old or the new file:
    /// temp file, fsync, rename, directory fsync.
    static func writeAtomically(_ contents: ByteBuffer, to path: String, directory: String) throws {
        let temp = path + ".tmp"
        _ = unlink(temp)
        do {
            let file = try PosixFile.openFile(temp, create: true)
            try file.truncate(to: 0)
            try file.write(contents, at: 0)
            while fsync(file.fd) != 0 {
                if errno == EINTR { continue }
                throw PosixFile.error("fsync", temp)
            }
        }
        guard rename(temp, path) == 0 else { throw PosixFile.error("rename", temp) }
        try syncDirectory(directory)
    }

    static func readWhole(_ path: String) throws -> ByteBuffer {
        let file = try PosixFile.openFile(path, create: false)
        return try file.read(at: 0, count: try file.size())
    }

    static func exists(_ path: String) -> Bool {
        access(path, F_OK) == 0
    }

    static func remove(_ path: String) throws {
        if unlink(path) != 0 && errno != ENOENT { throw PosixFile.error("unlink", path) }
    }
}

/// Wall-clock milliseconds since the epoch, the unit of Kafka timestamps and `*.ms` configs.
@usableFromInline
func currentTimeMillis() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
}
