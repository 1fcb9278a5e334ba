import NIOCore
import OnceStorage

/// A framed response as the connection writes it: buffers, and for Fetch the record sets as ranges
/// of segment files sent with sendfile, so a large fetch never sits in memory.
struct OutboundResponse: Sendable {
    enum Part: Sendable {
        case bytes(ByteBuffer)
        case file(StoredRecords)
    }

    var parts: [Part]
    /// The connection closes once this response is written: Kafka answers a refused SASL
    /// mechanism or a failed authentication and then hangs up.
    var closesConnection = false
    /// How long after the write the close waits, reading nothing more meanwhile: Kafka answers a
    /// failed authentication at once and delays only the close
    /// (`connection.failed.authentication.delay.ms`), so the client reads the reason before EOF.
    var closeDelay = TimeAmount.zero

    init(_ buffer: ByteBuffer) {
        parts = [.bytes(buffer)]
    }

    init(parts: [Part]) {
        self.parts = parts
    }

    func closing(if condition: Bool, after delay: TimeAmount = .zero) -> OutboundResponse {
        var response = self
        response.closesConnection = condition
        response.closeDelay = delay
        return response
    }

    var byteCount: Int {
        parts.reduce(0) { total, part in
            switch part {
            case .bytes(let b): total + b.readableBytes
            case .file(let f): total + f.length
            }
        }
    }

    /// Everything in one buffer (tests, and clients of `Broker.handle`).
    func materialized() throws -> ByteBuffer {
        var out = ByteBufferAllocator().buffer(capacity: byteCount)
        for part in parts {
            switch part {
            case .bytes(var b): out.writeBuffer(&b)
            case .file(let f):
                var bytes = try f.read()
                out.writeBuffer(&bytes)
            }
        }
        return out
    }

    /// A record set stood in for by `marker` while the response was encoded by the generated code.
    struct Placeholder: Sendable {
        var marker: ByteBuffer
        var records: StoredRecords
    }

    /// Random bytes no encoded response field will contain by chance (2^-128 per position).
    static func makeMarker() -> ByteBuffer {
        var marker = ByteBufferAllocator().buffer(capacity: markerSize)
        for _ in 0..<(markerSize / 8) { marker.writeInteger(UInt64.random(in: .min ... .max)) }
        return marker
    }

    static let markerSize = 16

    /// Cuts a framed response, encoded with markers as record sets, into buffers and file ranges:
    /// each marker and its length prefix (int32, or for flexible versions an unsigned varint of
    /// length + 1) become the real prefix followed by the file range, and the frame's size prefix
    /// grows by what the file ranges add. Markers appear in encoding order, which is the order of
    /// `placeholders`.
    static func splice(_ encoded: ByteBuffer, _ placeholders: [Placeholder], compact: Bool) -> OutboundResponse {
        guard !placeholders.isEmpty else { return OutboundResponse(encoded) }
        let bytes = Array(encoded.readableBytesView)
        let oldPrefix = compact ? 1 : 4
        var parts: [Part] = []
        var cursor = 0
        var growth = 0
        for placeholder in placeholders {
            let marker = Array(placeholder.marker.readableBytesView)
            let at = find(marker, in: bytes, from: cursor)
            precondition(at >= cursor + oldPrefix, "record-set marker missing from the encoded Fetch response")
            var head = ByteBufferAllocator().buffer(capacity: at - oldPrefix - cursor + 5)
            head.writeBytes(bytes[cursor..<(at - oldPrefix)])
            let length = placeholder.records.length
            if compact {
                var n = UInt64(length + 1)
                while n >= 0x80 {
                    head.writeInteger(UInt8(truncatingIfNeeded: n) | 0x80)
                    n >>= 7
                }
                head.writeInteger(UInt8(n))
            } else {
                head.writeInteger(Int32(length))
            }
            growth += head.writerIndex - (at - cursor) + length
            parts.append(.bytes(head))
            parts.append(.file(placeholder.records))
            cursor = at + marker.count
            growth -= marker.count
        }
        var tail = ByteBufferAllocator().buffer(capacity: bytes.count - cursor)
        tail.writeBytes(bytes[cursor...])
        parts.append(.bytes(tail))
        // The frame's size prefix is the first four bytes of the first part.
        if case .bytes(var first) = parts[0] {
            let size = first.getInteger(at: first.readerIndex, as: Int32.self)!
            first.setInteger(size + Int32(growth), at: first.readerIndex)
            parts[0] = .bytes(first)
        }
        return OutboundResponse(parts: parts)
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int {
        guard needle.count <= haystack.count else { return -1 }
        var i = start
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0] && haystack[i..<(i + needle.count)].elementsEqual(needle) { return i }
            i += 1
        }
        return -1
    }
}
