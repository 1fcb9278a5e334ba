import OnceClient
import Testing

@Suite struct ClientSASLTests {
    /// Configurations get logged and printed; the password must never come along.
    @Test func descriptionNamesTheUserNotThePassword() {
        let sasl = ClientSASL(mechanism: .scramSha512, username: "alice", password: "hunter2")
        var configuration = KafkaClientConfiguration()
        configuration.sasl = sasl
        #expect("\(sasl)" == "ClientSASL(SCRAM-SHA-512, user: alice)")
        #expect(!"\(configuration)".contains("hunter2"))
    }
}
