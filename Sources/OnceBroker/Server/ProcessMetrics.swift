#if canImport(Glibc)
import Glibc
#endif

/// The process's own CPU time, resident memory and descriptors, read from /proc/self when scraped,
/// under the names Prometheus client libraries use, so existing process dashboards work unchanged.
/// Elsewhere than Linux there is no /proc and nothing is written.
enum ProcessMetrics {
    static func write(into text: inout PrometheusText) {
        #if os(Linux)
        if let stat = readFile("/proc/self/stat"), let cpu = cpuSeconds(stat: stat) {
            text.family("process_cpu_seconds_total", "counter", help: "User and system CPU time the broker has used.")
            text.sample("process_cpu_seconds_total", cpu)
        }
        if let statm = readFile("/proc/self/statm"), let pages = residentPages(statm: statm) {
            text.family("process_resident_memory_bytes", "gauge", help: "Resident set size.")
            text.sample("process_resident_memory_bytes", pages * Int64(sysconf(Int32(_SC_PAGESIZE))))
        }
        if let open = openDescriptors() {
            text.family("process_open_fds", "gauge", help: "Open file descriptors: sockets, segment files, the data-directory lock.")
            text.sample("process_open_fds", Int64(open))
        }
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            text.family("process_max_fds", "gauge", help: "The descriptor limit (RLIMIT_NOFILE soft limit).")
            text.sample("process_max_fds", Int64(clamping: limit.rlim_cur))
        }
        #endif
    }

    /// utime + stime, fields 14 and 15 of /proc/self/stat, counted after the parenthesised command
    /// name because that name may itself hold spaces.
    static func cpuSeconds(stat: String, ticksPerSecond: Int = clockTicks) -> Double? {
        guard let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state), so utime (14) and stime (15) are at 11 and 12.
        guard fields.count > 12, let user = Int64(fields[11]), let system = Int64(fields[12]), ticksPerSecond > 0 else {
            return nil
        }
        return Double(user + system) / Double(ticksPerSecond)
    }

    /// The second field of /proc/self/statm: resident pages.
    static func residentPages(statm: String) -> Int64? {
        let fields = statm.split(separator: " ")
        guard fields.count > 1 else { return nil }
        return Int64(fields[1])
    }

    #if os(Linux)
    static var clockTicks: Int { sysconf(Int32(_SC_CLK_TCK)) }

    private static func readFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count], as: UTF8.self)
    }

    /// Entries of /proc/self/fd, less the descriptor reading the directory.
    private static func openDescriptors() -> Int? {
        guard let directory = opendir("/proc/self/fd") else { return nil }
        defer { closedir(directory) }
        var count = 0
        while let entry = readdir(directory) {
            let isDot = withUnsafeBytes(of: entry.pointee.d_name) { $0.first == UInt8(ascii: ".") }
            if !isDot { count += 1 }
        }
        return max(0, count - 1)
    }
    #else
    static var clockTicks: Int { 100 }
    #endif
}
