import KafkaProtocol
import NIOCore

/// The framing of a broker's own requests to another broker, kept apart from the socket so a
/// test can check every byte: a size prefix, the request header Kafka's schema asks for at that
/// version, the body; and on the way back the response header whose correlation id ties the answer
/// to its request.
struct InterBrokerFrames {
    /// Kafka brokers name themselves in the header's client id; logs on the receiving side then
    /// tell a peer's requests from a client's.
    let clientId: String
    private var lastCorrelationId: Int32 = 0

    /// `lastCorrelationId` is where numbering resumes; only a test of the wrap-around sets it.
    init(clientId: String, lastCorrelationId: Int32 = 0) {
        self.clientId = clientId
        self.lastCorrelationId = lastCorrelationId
    }

    /// A whole frame, size prefix included, and the correlation id it carries. Ids wrap past
    /// `Int32.max` to 1, never 0 or negative, so one long-lived connection never runs out.
    mutating func encode<R: KafkaRequest>(
        _ request: R, version: Int16, allocator: ByteBufferAllocator
    ) -> (correlationId: Int32, frame: ByteBuffer) {
        lastCorrelationId = lastCorrelationId == Int32.max ? 1 : lastCorrelationId + 1
        var frame = allocator.buffer(capacity: 256)
        frame.writeInteger(Int32(0), endianness: .big)
        var header = RequestHeader()
        header.requestApiKey = R.apiKey
        header.requestApiVersion = version
        header.correlationId = lastCorrelationId
        header.clientId = clientId
        header.encode(into: &frame, version: KafkaHeaderVersions.request(apiKey: R.apiKey, apiVersion: version))
        request.encode(into: &frame, version: version)
        frame.setInteger(Int32(frame.readableBytes - 4), at: frame.readerIndex, endianness: .big)
        return (lastCorrelationId, frame)
    }

    /// The correlation id at the front of a response frame (size prefix already removed), which
    /// every response header version starts with.
    static func correlationId(of frame: ByteBuffer) -> Int32? {
        frame.getInteger(at: frame.readerIndex, endianness: .big, as: Int32.self)
    }

    /// Decodes a response frame to the request `R` sent at `version`.
    static func decode<R: KafkaRequest>(
        _ type: R.Type, version: Int16, frame: ByteBuffer
    ) throws -> R.Response {
        var body = frame
        _ = try ResponseHeader(
            from: &body, version: KafkaHeaderVersions.response(apiKey: R.apiKey, apiVersion: version))
        return try R.Response(from: &body, version: version)
    }
}

/// The requests one connection has written and not yet seen answered, oldest first. A Kafka
/// broker answers a connection's requests in the order they came, so a response must carry the
/// oldest outstanding id; anything else means the stream is out of step and the connection is
/// closed rather than pairing an answer with the wrong request.
struct InterBrokerInFlight<Value> {
    private var queue: [(id: Int32, value: Value)] = []
    private var head = 0

    var isEmpty: Bool { head == queue.count }

    enum Completion {
        case matched(Value)
        /// Older requests are still unanswered, or the id was never sent.
        case outOfStep(expected: Int32?)
    }

    mutating func register(_ id: Int32, _ value: Value) {
        queue.append((id, value))
    }

    mutating func complete(_ id: Int32) -> Completion {
        guard head < queue.count, queue[head].id == id else {
            return .outOfStep(expected: head < queue.count ? queue[head].id : nil)
        }
        let value = queue[head].value
        head += 1
        if head == queue.count {
            queue.removeAll(keepingCapacity: true)
            head = 0
        }
        return .matched(value)
    }

    /// Everything still waiting, oldest first, to be failed when the connection goes.
    mutating func removeAll() -> [Value] {
        let rest = queue[head...].map(\.value)
        queue = []
        head = 0
        return rest
    }
}

