import KafkaProtocol
import NIOCore
import Testing

@Suite struct HeaderTests {
    @Test func requestHeaderFollowsBodyFlexibility() {
        // Produce became flexible at v9, Metadata at v9, Fetch at v12.
        #expect(KafkaHeaderVersions.request(apiKey: ApiKey.produce.rawValue, apiVersion: 8) == 1)
        #expect(KafkaHeaderVersions.request(apiKey: ApiKey.produce.rawValue, apiVersion: 9) == 2)
        #expect(KafkaHeaderVersions.request(apiKey: ApiKey.metadata.rawValue, apiVersion: 12) == 2)
        #expect(KafkaHeaderVersions.request(apiKey: ApiKey.fetch.rawValue, apiVersion: 11) == 1)
        #expect(KafkaHeaderVersions.request(apiKey: ApiKey.apiVersions.rawValue, apiVersion: 3) == 2)
        #expect(KafkaHeaderVersions.request(apiKey: ApiKey.apiVersions.rawValue, apiVersion: 2) == 1)
    }

    @Test func responseHeaderFollowsBodyFlexibilityExceptApiVersions() {
        #expect(KafkaHeaderVersions.response(apiKey: ApiKey.produce.rawValue, apiVersion: 8) == 0)
        #expect(KafkaHeaderVersions.response(apiKey: ApiKey.produce.rawValue, apiVersion: 9) == 1)
        #expect(KafkaHeaderVersions.response(apiKey: ApiKey.findCoordinator.rawValue, apiVersion: 3) == 1)
        #expect(KafkaHeaderVersions.response(apiKey: ApiKey.apiVersions.rawValue, apiVersion: 3) == 0)
        #expect(KafkaHeaderVersions.response(apiKey: ApiKey.apiVersions.rawValue, apiVersion: 4) == 0)
    }

    @Test func apisThatAreNeverFlexibleUseTheClassicHeaders() {
        for key in [ApiKey.saslHandshake, .offsetDelete] {
            #expect(key.firstFlexibleVersion == nil)
            #expect(KafkaHeaderVersions.request(apiKey: key.rawValue, apiVersion: key.validVersions.upperBound) == 1)
            #expect(KafkaHeaderVersions.response(apiKey: key.rawValue, apiVersion: key.validVersions.upperBound) == 0)
        }
    }

    @Test func unknownApiKeyGetsTheClassicHeaders() {
        #expect(ApiKey(rawValue: 1000) == nil)
        #expect(KafkaHeaderVersions.request(apiKey: 1000, apiVersion: 50) == 1)
        #expect(KafkaHeaderVersions.response(apiKey: 1000, apiVersion: 50) == 0)
    }

    @Test func flexibilityTableMatchesTheGeneratedMessages() {
        #expect(ApiKey.allCases.count == 44)
        #expect(ApiKey.produce.firstFlexibleVersion == ProduceRequest.firstFlexibleVersion)
        #expect(ApiKey.fetch.firstFlexibleVersion == FetchResponse.firstFlexibleVersion)
        #expect(ApiKey.describeCluster.firstFlexibleVersion == 0)
        #expect(ApiKey.offsetForLeaderEpoch.name == "OffsetForLeaderEpoch")
        #expect(ApiKey.produce.validVersions == ProduceRequest.validVersions)
    }

    /// The client id keeps its classic int16 length in header v2, so a broker that does not know
    /// the api version can still read it.
    @Test func requestHeaderV2ClientIdIsNotCompact() throws {
        var header = RequestHeader()
        header.requestApiKey = 18
        header.requestApiVersion = 3
        header.correlationId = 7
        header.clientId = "abc"
        var buffer = ByteBuffer()
        header.encode(into: &buffer, version: 2)
        #expect(Array(buffer.readableBytesView) == [0, 18, 0, 3, 0, 0, 0, 7, 0, 3, 97, 98, 99, 0])
        #expect(try RequestHeader(from: &buffer, version: 2) == header)
    }

    @Test func nullClientIdAndHeaderV1() throws {
        #expect(RequestHeader().clientId == "", "Kafka's default for a string without an explicit null default")
        var header = RequestHeader()
        header.requestApiKey = 3
        header.requestApiVersion = 1
        header.correlationId = -1
        header.clientId = nil
        var buffer = ByteBuffer()
        header.encode(into: &buffer, version: 1)
        #expect(Array(buffer.readableBytesView) == [0, 3, 0, 1, 255, 255, 255, 255, 255, 255])
        #expect(try RequestHeader(from: &buffer, version: 1) == header)
    }

    @Test func responseHeaderV1CarriesTaggedFields() throws {
        var header = ResponseHeader()
        header.correlationId = 258
        var v0 = ByteBuffer()
        header.encode(into: &v0, version: 0)
        #expect(Array(v0.readableBytesView) == [0, 0, 1, 2])
        var v1 = ByteBuffer()
        header.encode(into: &v1, version: 1)
        #expect(Array(v1.readableBytesView) == [0, 0, 1, 2, 0])
        #expect(try ResponseHeader(from: &v1, version: 1) == header)
    }
}
