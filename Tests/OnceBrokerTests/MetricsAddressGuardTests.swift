import NIOCore
@testable import OnceBroker
import Testing

@Suite("The metrics endpoint stays on loopback unless allowed")
struct MetricsAddressGuardTests {
    @Test("All of 127.0.0.0/8, ::1 and localhost are loopback")
    func loopback() throws {
        for host in ["127.0.0.1", "127.8.9.10", "::1", "localhost"] {
            try MetricsAddressGuard.check(HostPort(host: host, port: 9404))
        }
    }

    @Test("Wildcards and other interfaces are refused with the flag that allows them")
    func remote() {
        for host in ["0.0.0.0", "::", "10.1.2.3", "192.168.0.1", "128.0.0.1"] {
            #expect {
                try MetricsAddressGuard.check(HostPort(host: host, port: 9404))
            } throws: { error in
                "\(error)".contains("--metrics-allow-remote")
            }
        }
    }
}
