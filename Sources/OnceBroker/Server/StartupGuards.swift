#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NIOCore

/// Why a broker refused to start; the description is the one line an operator sees.
public struct StartupError: Error, CustomStringConvertible {
    public var description: String
}

/// Binds the listen address once and lets it go, so a broker whose port is taken says so before it
/// opens (and recovers, and possibly rewrites) a data directory that may belong to the broker
/// already listening there.
enum ListenAddressProbe {
    static func check(_ listener: Listener) throws {
        do {
            try check(listener.address)
        } catch let error as StartupError {
            throw StartupError(description: "\(error.description) (listener \(listener.name))")
        }
    }

    static func check(_ address: HostPort) throws {
        let resolved: SocketAddress
        do {
            resolved = try SocketAddress.makeAddressResolvingHost(address.host, port: address.port)
        } catch {
            throw StartupError(description: "cannot resolve listen address \(address): \(error)")
        }
        #if canImport(Glibc)
        let stream = Int32(SOCK_STREAM.rawValue)
        #else
        let stream = SOCK_STREAM
        #endif
        let fd = socket(Int32(resolved.protocol.rawValue), stream, 0)
        guard fd >= 0 else { throw StartupError(description: "cannot open a socket to check \(address): errno \(errno)") }
        defer { close(fd) }
        // The real listener sets SO_REUSEADDR too, so a port held only by TIME_WAIT passes both.
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let result = resolved.withSockAddr { pointer, size in bind(fd, pointer, socklen_t(size)) }
        guard result == 0 else {
            let code = errno
            if code == EADDRINUSE {
                throw StartupError(description: "listen address \(address) is already in use")
            }
            throw StartupError(description: "cannot bind listen address \(address): \(String(cString: strerror(code)))")
        }
    }
}

/// `/metrics` answers anyone who reaches it, without authentication, with the names of every
/// topic, group and transactional id: it may listen on loopback only unless the operator says
/// otherwise (`--metrics-allow-remote`).
enum MetricsAddressGuard {
    static func check(_ address: HostPort) throws {
        let resolved: SocketAddress
        do {
            resolved = try SocketAddress.makeAddressResolvingHost(address.host, port: address.port)
        } catch {
            throw StartupError(description: "cannot resolve metrics address \(address): \(error)")
        }
        guard isLoopback(resolved) else {
            throw StartupError(
                description:
                    "metrics address \(address) is not a loopback address; /metrics is unauthenticated, so pass --metrics-allow-remote to serve it beyond this machine"
            )
        }
    }

    static func isLoopback(_ address: SocketAddress) -> Bool {
        switch address {
        case .v4(let v4):
            // 127.0.0.0/8, the whole loopback block.
            return UInt32(bigEndian: v4.address.sin_addr.s_addr) >> 24 == 127
        case .v6:
            return address.ipAddress == "::1"
        default:
            return false
        }
    }
}

/// An exclusive flock on `<data-dir>/.lock`, held for the broker's lifetime: two brokers appending to
/// the same segments would corrupt each other. The kernel drops the lock when the process dies, so
/// a SIGKILLed broker never leaves a stale one behind.
final class DataDirectoryLock {
    static let fileName = ".lock"
    private var fd: Int32

    init(directory: String) throws {
        try DataDirectoryCheck.check(directory)
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            throw StartupError(description: "cannot create data directory \(directory): \(error.localizedDescription)")
        }
        let path = directory.hasSuffix("/") ? directory + Self.fileName : directory + "/" + Self.fileName
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw StartupError(description: "cannot open lock file \(path): \(String(cString: strerror(errno)))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            close(fd)
            if code == EWOULDBLOCK {
                throw StartupError(description: "data directory \(directory) is in use by another broker (\(path) is locked)")
            }
            throw StartupError(description: "cannot lock \(path): \(String(cString: strerror(code)))")
        }
    }

    func release() {
        guard fd >= 0 else { return }
        close(fd)
        fd = -1
    }

    deinit { release() }
}
