import Foundation
import KafkaProtocol
import NIOCore
import Testing

/// Bytes from other implementations: request frames captured from real clients, and kafka-python's
/// own encoding of every generated sample. A codec that only agrees with itself passes round trips
/// but not these.
@Suite struct GoldenBytesTests {
    /// A request frame split into its header and body, decoded with the header version the api
    /// version calls for.
    struct DecodedFrame<Body: KafkaRequest> {
        var header: RequestHeader
        var body: Body
        var headerVersion: Int16
    }

    func decodeFrame<Body: KafkaRequest>(_ hex: String, as: Body.Type) throws -> DecodedFrame<Body> {
        var buffer = ByteBuffer(bytes: try bytes(hex: hex))
        let apiKey = try #require(buffer.getInteger(at: buffer.readerIndex, as: Int16.self))
        let apiVersion = try #require(buffer.getInteger(at: buffer.readerIndex + 2, as: Int16.self))
        #expect(apiKey == Body.apiKey)
        let headerVersion = KafkaHeaderVersions.request(apiKey: apiKey, apiVersion: apiVersion)
        let header = try RequestHeader(from: &buffer, version: headerVersion)
        let body = try Body(from: &buffer, version: apiVersion)
        #expect(buffer.readableBytes == 0, "\(Body.self) v\(apiVersion) left \(buffer.readableBytes) bytes")

        var again = ByteBuffer()
        header.encode(into: &again, version: headerVersion)
        body.encode(into: &again, version: apiVersion)
        #expect(hexString(again) == hex, "\(Body.self) v\(apiVersion) re-encodes differently")
        return DecodedFrame(header: header, body: body, headerVersion: headerVersion)
    }

    @Test func librdkafkaApiVersionsV3() throws {
        let frame = try decodeFrame(ClientFrames.librdkafkaApiVersionsV3, as: ApiVersionsRequest.self)
        #expect(frame.headerVersion == 2)
        #expect(frame.header.requestApiKey == 18)
        #expect(frame.header.requestApiVersion == 3)
        #expect(frame.header.correlationId == 1)
        #expect(frame.header.clientId == "golden-rdkafka")
        #expect(frame.body.clientSoftwareName == "confluent-kafka-python")
        #expect(frame.body.clientSoftwareVersion == "2.16.1-rdkafka-2.16.0")
    }

    @Test func librdkafkaMetadata() throws {
        let v12 = try decodeFrame(ClientFrames.librdkafkaMetadataV12, as: MetadataRequest.self)
        #expect(v12.headerVersion == 2)
        #expect(v12.header.requestApiVersion == 12)
        #expect(v12.header.correlationId == 2)
        #expect(v12.body.topics == [])
        #expect(v12.body.allowAutoTopicCreation == false)
        #expect(v12.body.includeTopicAuthorizedOperations == false)

        let v8 = try decodeFrame(ClientFrames.librdkafkaMetadataV8, as: MetadataRequest.self)
        #expect(v8.headerVersion == 1)
        #expect(v8.header.clientId == "golden-rdkafka")
        #expect(v8.body.topics == [])
        #expect(v8.body.allowAutoTopicCreation == false)
    }

    @Test func kafkaPythonApiVersions() throws {
        for (hex, version) in [
            (ClientFrames.kafkaPythonApiVersionsV4, 4), (ClientFrames.kafkaPythonApiVersionsV3, 3),
        ] as [(String, Int16)] {
            let frame = try decodeFrame(hex, as: ApiVersionsRequest.self)
            #expect(frame.headerVersion == 2)
            #expect(frame.header.requestApiVersion == version)
            #expect(frame.header.clientId == "golden-kafka-python")
            #expect(frame.body.clientSoftwareName == "kafka-python")
            #expect(frame.body.clientSoftwareVersion == "3.0.12")
        }
        let v2 = try decodeFrame(ClientFrames.kafkaPythonApiVersionsV2, as: ApiVersionsRequest.self)
        #expect(v2.headerVersion == 1)
        #expect(v2.header.clientId == "golden-kafka-python")
        #expect(v2.body == ApiVersionsRequest())
    }

    @Test func kafkaPythonMetadata() throws {
        let v12 = try decodeFrame(ClientFrames.kafkaPythonMetadataV12, as: MetadataRequest.self)
        #expect(v12.headerVersion == 2)
        #expect(v12.header.correlationId == 2)
        #expect(v12.body.topics == [])
        #expect(v12.body.allowAutoTopicCreation == true)
        #expect(v12.body.includeTopicAuthorizedOperations == false)

        let v8 = try decodeFrame(ClientFrames.kafkaPythonMetadataV8, as: MetadataRequest.self)
        #expect(v8.headerVersion == 1)
        #expect(v8.body.topics == [])
        #expect(v8.body.allowAutoTopicCreation == true)
        #expect(v8.body.includeClusterAuthorizedOperations == false)
    }

    /// Known tagged fields are written only when they differ from their default, unknown ones are
    /// kept, and the section is sorted by tag; non-flexible versions have no section at all.
    @Test func taggedFieldsInApiVersionsResponse() throws {
        var response = ApiVersionsResponse()
        var empty = ByteBuffer()
        response.encode(into: &empty, version: 3)
        #expect(hexString(empty) == "0000" + "01" + "00000000" + "00")

        response.finalizedFeaturesEpoch = 5
        response.unknownTaggedFields = [UnknownTaggedField(tag: 7, data: [9]), UnknownTaggedField(tag: 0x80, data: [])]
        var buffer = ByteBuffer()
        response.encode(into: &buffer, version: 3)
        #expect(hexString(buffer) == "0000" + "01" + "00000000" + "03" + "0108" + "0000000000000005" + "070109" + "800100")
        #expect(try ApiVersionsResponse(from: &buffer, version: 3) == response)

        var classic = ByteBuffer()
        response.encode(into: &classic, version: 2)
        #expect(hexString(classic) == "0000" + "00000000" + "00000000")
    }

    /// Every sample of every message and version, encoded by us, is byte-for-byte what
    /// kafka-python's independent codec produces, and decodes from kafka-python's bytes.
    @Test func kafkaPythonEncodesEverySampleTheSame() throws {
        var expected: [String: String] = [:]
        for row in kafkaPythonEncodings {
            expected["\(row.message) v\(row.version)"] = row.hex
        }
        var dump = ""
        var checked = 0
        func check<M: Sampled>(_: M.Type) throws {
            for version in M.validVersions {
                let key = "\(M.self) v\(version)"
                let sample = M.sample(version: version, unknownTags: false)
                var buffer = ByteBuffer()
                sample.encode(into: &buffer, version: version)
                dump += "\(M.self) \(version) \(hexString(buffer))\n"
                // A missing fixture fails the test but the dump is still written, so the fixture
                // can be regenerated after new messages are added.
                guard let hex = expected[key] else {
                    Issue.record("no kafka-python encoding for \(key)")
                    continue
                }
                #expect(hexString(buffer) == hex, "\(key)")
                var theirs = ByteBuffer(bytes: try bytes(hex: hex))
                #expect(try M(from: &theirs, version: version) == sample, "\(key)")
                checked += 1
            }
        }
        for type in generatedMessageTypes where !kafkaOnlyMessageNames.contains("\(type)") {
            try check(type)
        }
        #expect(checked == kafkaPythonEncodings.count)
        if let path = ProcessInfo.processInfo.environment["KAFKA_PROTOCOL_DUMP_SAMPLES"] {
            try dump.write(toFile: path, atomically: true, encoding: .utf8)
        }
    }
}

func bytes(hex: String) throws -> [UInt8] {
    let digits = Array(hex.utf8)
    guard digits.count % 2 == 0 else { throw KafkaProtocolError.invalid("odd hex length") }
    return try stride(from: 0, to: digits.count, by: 2).map { i in
        guard let byte = UInt8(String(decoding: digits[i..<i + 2], as: UTF8.self), radix: 16) else {
            throw KafkaProtocolError.invalid("bad hex")
        }
        return byte
    }
}

func hexString(_ buffer: ByteBuffer) -> String {
    buffer.readableBytesView.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
        .joined()
}
