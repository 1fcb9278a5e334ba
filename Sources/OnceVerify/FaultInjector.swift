import Dispatch

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs the user's fault command through `/bin/sh -c` every interval until the deadline, one
/// at a time, so a kill-and-restart script finishes before the next begins.
struct FaultInjector: Sendable {
    let command: String
    let interval: Duration
    let log: @Sendable (String) -> Void

    /// Returns how many times the command ran.
    func run(until deadline: ContinuousClock.Instant) async -> Int {
        var runs = 0
        while !Task.isCancelled {
            let next = ContinuousClock.now + interval
            guard next < deadline else { break }
            try? await Task.sleep(until: next, clock: .continuous)
            if Task.isCancelled { break }
            runs += 1
            let status = await Self.shell(command)
            log("fault \(runs): `\(command)` exited with \(status)")
        }
        return runs
    }

    /// The command's exit status (128 + signal when killed, -1 when it could not start).
    /// posix_spawn and waitpid rather than Foundation's Process, which learns of the exit
    /// through a descriptor the child passes on: a command that starts a broker in the
    /// background would then never be seen to finish. (SwiftNIO opens its sockets close-on-exec,
    /// so a broker the command restarts holds none of ours open.)
    static func shell(_ command: String) async -> Int32 {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                continuation.resume(returning: spawnAndWait(["/bin/sh", "-c", command]))
            }
        }
    }

    private static func spawnAndWait(_ arguments: [String]) -> Int32 {
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid: pid_t = 0
        guard posix_spawn(&pid, arguments[0], nil, nil, argv, environ) == 0 else { return -1 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { return -1 }
        }
        let signal = status & 0x7f
        return signal == 0 ? (status >> 8) & 0xff : 128 + signal
    }
}
