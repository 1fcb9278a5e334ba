import KafkaProtocol
import OnceClient
import Testing

@Suite struct ApiVersionTableTests {
    let table = ApiVersionTable(brokerRanges: [0: 3...9, 1: 4...18, 3: 0...12])

    @Test func picksTheHighestVersionBothSidesKnow() {
        #expect(table.version(apiKey: 0, client: 3...13) == 9)
        #expect(table.version(apiKey: 1, client: 4...12) == 12)
        #expect(table.version(apiKey: 3, client: 0...13) == 12)
    }

    @Test func refusesDisjointRanges() {
        #expect(table.version(apiKey: 0, client: 10...13) == nil)
        #expect(table.version(apiKey: 0, client: 0...2) == nil)
    }

    @Test func refusesAnApiTheBrokerLacks() {
        #expect(table.version(apiKey: 22, client: 0...5) == nil)
        #expect(!table.supports(apiKey: 22))
    }

    @Test func usesTheGeneratedRangesForATypedRequest() {
        // Metadata's schema range is 0-13; the broker above stops at 12.
        #expect(table.version(for: MetadataRequest.self) == 12)
    }
}
