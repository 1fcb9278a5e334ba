import NIOHTTP1

/// Turns a connection's request parts into whole requests while holding the console's limits:
/// a body past `maxBodyBytes` is refused with 413 as soon as it is declared or seen, before
/// anything is buffered. Header bytes and count are bounded earlier, by the HTTP decoder.
struct ConsoleRequestReader {
    enum Outcome: Equatable {
        /// Keep reading.
        case more
        /// A whole request, to answer; the connection stays open if `keepAlive`.
        case request(Request)
        /// Answer this and close: the rest of the request is not read.
        case refuse(HTTPResponseStatus, String)
    }

    struct Request: Equatable {
        var head: HTTPRequestHead
    }

    private enum State {
        case idle
        case body(HTTPRequestHead, received: Int)
    }

    let maxBodyBytes: Int
    private var state = State.idle

    init(maxBodyBytes: Int) {
        self.maxBodyBytes = maxBodyBytes
    }

    mutating func read(_ part: HTTPServerRequestPart) -> Outcome {
        switch (part, state) {
        case (.head(let head), .idle):
            if let declared = head.headers.first(name: "Content-Length").flatMap(Int.init), declared > maxBodyBytes {
                return tooLarge()
            }
            state = .body(head, received: 0)
            return .more
        case (.body(let bytes), .body(let head, let received)):
            let total = received + bytes.readableBytes
            guard total <= maxBodyBytes else { return tooLarge() }
            state = .body(head, received: total)
            return .more
        case (.end, .body(let head, _)):
            state = .idle
            return .request(Request(head: head))
        case (.head, .body), (.body, .idle), (.end, .idle):
            // The HTTP decoder delivers head, body, end in order; anything else is a broken peer.
            return .refuse(.badRequest, "request parts out of order")
        }
    }

    private func tooLarge() -> Outcome {
        .refuse(.payloadTooLarge, "the request body is larger than \(maxBodyBytes) bytes (--http-max-request-body-bytes)")
    }
}
