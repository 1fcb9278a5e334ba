import KafkaProtocol
import NIOCore
import NIOPosix

/// One TCP connection to one broker, with its API versions already negotiated.
///
/// Requests may be sent concurrently from any task; they are pipelined on the socket and each
/// caller gets its own response back.
public final class KafkaConnection: Sendable {
    public let apiVersions: ApiVersionTable
    private let transport: KafkaTransport

    public var host: String { transport.host }
    public var port: Int { transport.port }
    public var endpoint: String { transport.endpoint }

    private init(transport: KafkaTransport, apiVersions: ApiVersionTable) {
        self.transport = transport
        self.apiVersions = apiVersions
    }

    /// Opens the connection and asks the broker which API versions it speaks.
    public static func connect(
        host: String, port: Int, configuration: KafkaClientConfiguration = KafkaClientConfiguration(),
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws -> KafkaConnection {
        let transport = try await KafkaTransport.connect(
            host: host, port: port, configuration: configuration, group: group)
        do {
            let table = try await negotiateVersions(transport, configuration: configuration)
            if let sasl = configuration.sasl {
                try await SaslAuthentication.authenticate(sasl, over: transport, versions: table)
            }
            return KafkaConnection(transport: transport, apiVersions: table)
        } catch {
            await transport.close()
            throw error
        }
    }

    /// The version `send` would use for `R`.
    public func version<R: KafkaRequest>(for type: R.Type) throws -> Int16 {
        guard let version = apiVersions.version(for: type) else {
            let broker = apiVersions.brokerRanges[R.apiKey].map { "\($0.lowerBound)-\($0.upperBound)" } ?? "none"
            throw KafkaClientError(
                .unsupportedApi,
                "\(endpoint) does not support \(R.self) in versions \(R.validVersions.lowerBound)-\(R.validVersions.upperBound) (broker: \(broker))"
            )
        }
        return version
    }

    /// Sends `request` at the negotiated version (or `version`) and decodes the response.
    ///
    /// `brokerWait` is how long the request itself tells the broker it may take (a fetch's max
    /// wait, a produce timeout); it is added to the client's request timeout.
    public func send<R: KafkaRequest>(
        _ request: R, version: Int16? = nil, brokerWait: Duration = .zero
    ) async throws -> R.Response {
        let version = try version ?? self.version(for: R.self)
        guard var body = try await transport.roundTrip(
            apiKey: R.apiKey, version: version, extraTimeout: TimeAmount(brokerWait),
            encodeBody: { request.encode(into: &$0, version: version) })
        else { preconditionFailure("a round trip that expects a response returned none") }
        return try Self.decode(R.Response.self, from: &body, version: version, endpoint: endpoint)
    }

    /// Writes `request` now and returns a handle to await its response later. Requests started
    /// in sequence from one actor are written in that sequence; `send` gives no such promise
    /// because its caller may be suspended before the write.
    public func start<R: KafkaRequest>(
        _ request: R, version: Int16? = nil, brokerWait: Duration = .zero
    ) throws -> PendingResponse<R.Response> {
        let version = try version ?? self.version(for: R.self)
        let frame = transport.start(
            apiKey: R.apiKey, version: version, extraTimeout: TimeAmount(brokerWait),
            encodeBody: { request.encode(into: &$0, version: version) })
        return PendingResponse(frame: frame)
    }

    /// A response still to come for a request `start` wrote.
    public struct PendingResponse<Response: KafkaResponse>: Sendable {
        let frame: KafkaTransport.PendingFrame

        public func get() async throws -> Response {
            guard var body = try await frame.body() else {
                preconditionFailure("a request that expects a response returned none")
            }
            return try KafkaConnection.decode(Response.self, from: &body, version: frame.version, endpoint: frame.endpoint)
        }
    }

    /// Sends a request the broker does not answer (produce with acks=0); returns once written.
    public func sendWithoutResponse<R: KafkaRequest>(_ request: R, version: Int16? = nil) async throws {
        let version = try version ?? self.version(for: R.self)
        _ = try await transport.roundTrip(
            apiKey: R.apiKey, version: version, expectsResponse: false,
            encodeBody: { request.encode(into: &$0, version: version) })
    }

    /// False once the connection has closed; requests on it then fail and a new one is needed.
    public var isActive: Bool { transport.isActive }

    public func close() async {
        await transport.close()
    }

    fileprivate static func decode<T: KafkaResponse>(
        _ type: T.Type, from body: inout ByteBuffer, version: Int16, endpoint: String
    ) throws -> T {
        do {
            return try T(from: &body, version: version)
        } catch {
            throw KafkaClientError(.malformedResponse, "cannot decode \(T.self) v\(version) from \(endpoint): \(error)")
        }
    }

    /// ApiVersions is sent at our newest version first. A broker that does not know that version
    /// answers in v0 with UNSUPPORTED_VERSION and its own ApiVersions range, and we retry once at
    /// the highest version both know.
    private static func negotiateVersions(
        _ transport: KafkaTransport, configuration: KafkaClientConfiguration
    ) async throws -> ApiVersionTable {
        var version = ApiVersionsRequest.validVersions.upperBound
        for _ in 0..<2 {
            var request = ApiVersionsRequest()
            request.clientSoftwareName = configuration.softwareName
            request.clientSoftwareVersion = configuration.softwareVersion
            let sentVersion = version
            guard var body = try await transport.roundTrip(
                apiKey: ApiVersionsRequest.apiKey, version: sentVersion,
                encodeBody: { request.encode(into: &$0, version: sentVersion) })
            else { preconditionFailure("a round trip that expects a response returned none") }

            let errorCode = body.getInteger(at: body.readerIndex, endianness: .big, as: Int16.self)
            if errorCode == ErrorCode.unsupportedVersion.rawValue, sentVersion > 0 {
                let fallback = try decode(ApiVersionsResponse.self, from: &body, version: 0, endpoint: transport.endpoint)
                let table = ApiVersionTable(fallback)
                guard let next = table.version(apiKey: ApiVersionsRequest.apiKey, client: ApiVersionsRequest.validVersions),
                    next < sentVersion
                else {
                    throw KafkaClientError(.unsupportedApi, "\(transport.endpoint) supports no ApiVersions version this client speaks")
                }
                version = next
                continue
            }
            let response = try decode(ApiVersionsResponse.self, from: &body, version: sentVersion, endpoint: transport.endpoint)
            if let error = KafkaError(errorCode: response.errorCode) { throw error }
            return ApiVersionTable(response)
        }
        throw KafkaClientError(.unsupportedApi, "\(transport.endpoint) kept rejecting ApiVersions")
    }
}

extension ApiVersionTable {
    init(_ response: ApiVersionsResponse) {
        var ranges: [Int16: ClosedRange<Int16>] = [:]
        for key in response.apiKeys where key.minVersion <= key.maxVersion {
            ranges[key.apiKey] = key.minVersion...key.maxVersion
        }
        self.init(brokerRanges: ranges)
    }
}
