import NIOCore
import Testing

@testable import OnceStreams

@Suite struct RESPCodecTests {
    @Test func encodesCommandsAsArraysOfBulkStrings() {
        var buffer = ByteBuffer()
        RESPCodec.encodeCommand(["SET", "k", "v", "NX", "EX", "60"], into: &buffer)
        #expect(String(buffer: buffer) == "*6\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nNX\r\n$2\r\nEX\r\n$2\r\n60\r\n")
    }

    @Test func decodesEveryReplyType() throws {
        var buffer = ByteBuffer(string: "+OK\r\n-ERR no\r\n:42\r\n$3\r\nabc\r\n$-1\r\n*2\r\n:1\r\n$0\r\n\r\n*-1\r\n")
        #expect(try RESPCodec.decode(&buffer) == .simpleString("OK"))
        #expect(try RESPCodec.decode(&buffer) == .error("ERR no"))
        #expect(try RESPCodec.decode(&buffer) == .integer(42))
        #expect(try RESPCodec.decode(&buffer) == .bulkString(Array("abc".utf8)))
        #expect(try RESPCodec.decode(&buffer) == .bulkString(nil))
        #expect(try RESPCodec.decode(&buffer) == .array([.integer(1), .bulkString([])]))
        #expect(try RESPCodec.decode(&buffer) == .array(nil))
        #expect(buffer.readableBytes == 0)
    }

    @Test func waitsForWholeRepliesByteByByte() throws {
        let whole = Array("*2\r\n$5\r\nhello\r\n:7\r\n".utf8)
        for cut in 0..<whole.count {
            var partial = ByteBuffer(bytes: whole[..<cut])
            #expect(try RESPCodec.decode(&partial) == nil, "cut at \(cut)")
            #expect(partial.readableBytes == cut, "a partial reply is left untouched")
        }
        var buffer = ByteBuffer(bytes: whole)
        #expect(try RESPCodec.decode(&buffer) == .array([.bulkString(Array("hello".utf8)), .integer(7)]))
    }

    @Test func bulkStringsMayHoldCRLF() throws {
        var buffer = ByteBuffer(string: "$4\r\na\r\nb\r\n")
        #expect(try RESPCodec.decode(&buffer)?.string == "a\r\nb")
    }

    @Test func rejectsUnknownTypesAndBadLengths() {
        var unknown = ByteBuffer(string: "?x\r\n")
        #expect(throws: RESPCodec.DecodingError.self) { try RESPCodec.decode(&unknown) }
        var badLength = ByteBuffer(string: "$x\r\n")
        #expect(throws: RESPCodec.DecodingError.self) { try RESPCodec.decode(&badLength) }
    }
}
