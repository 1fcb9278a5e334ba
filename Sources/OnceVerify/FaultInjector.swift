import Foundation

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

    static func shell(_ command: String) async -> Int32 {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = ["-c", command]
        return await withCheckedContinuation { continuation in
            process.terminationHandler = { continuation.resume(returning: $0.terminationStatus) }
            do {
                try process.run()
            } catch {
                process.terminationHandler = nil
                continuation.resume(returning: -1)
            }
        }
    }
}
