import OnceClient
import Testing

@Suite struct BootstrapServerTests {
    @Test func parsesHostAndPort() {
        #expect(BootstrapServer("127.0.0.1:9092") == BootstrapServer(host: "127.0.0.1", port: 9092))
        #expect(BootstrapServer(" broker-1:19092 ") == BootstrapServer(host: "broker-1", port: 19092))
    }

    @Test func parsesBracketedIPv6() {
        let server = BootstrapServer("[::1]:9092")
        #expect(server == BootstrapServer(host: "::1", port: 9092))
        #expect(server?.description == "[::1]:9092")
    }

    @Test(arguments: ["localhost", ":9092", "host:", "host:0", "host:70000", "host:abc"])
    func rejectsMalformedEntries(_ text: String) {
        #expect(BootstrapServer(text) == nil)
    }

    @Test func parsesAList() {
        #expect(BootstrapServer.parseList("a:1,b:2")?.map(\.port) == [1, 2])
        #expect(BootstrapServer.parseList("a:1,b") == nil)
        #expect(BootstrapServer.parseList("") == nil)
    }
}
