import Foundation
import KafkaProtocol

/// One line of `once produce --json`: the shape `once consume --json` prints, so a topic can be
/// copied with a pipe between the two. Only "value" is required; a null value is a tombstone.
/// `--format` lines become the same record, so both carry a partition and time of their own.
struct JSONLineRecord {
    var key: [UInt8]?
    var value: [UInt8]?
    var headers: [RecordHeader] = []
    var partition: Int32?
    var timestamp: Int64?

    init(key: [UInt8]?, value: [UInt8]?, headers: [RecordHeader] = [], partition: Int32?, timestamp: Int64?) {
        (self.key, self.value, self.headers, self.partition, self.timestamp) = (key, value, headers, partition, timestamp)
    }

    init(_ line: String, lineNumber: Int) throws {
        func failure(_ why: String) -> CommandFailure { CommandFailure("line \(lineNumber): \(why)") }
        guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw failure("not a JSON object")
        }
        guard object.keys.contains("value") else { throw failure("no \"value\" field") }
        func bytes(_ field: String) throws -> [UInt8]? {
            switch object[field] {
            case nil, is NSNull: return nil
            case let s as String: return Array(s.utf8)
            default: throw failure("\"\(field)\" must be a string or null")
            }
        }
        key = try bytes("key")
        value = try bytes("value")
        switch object["headers"] {
        case nil, is NSNull: break
        case let map as [String: Any]:
            headers = try map.keys.sorted().map { name in
                switch map[name] {
                case is NSNull: return RecordHeader(key: name, value: nil)
                case let s as String: return RecordHeader(key: name, value: Array(s.utf8))
                default: throw failure("header \"\(name)\" must be a string or null")
                }
            }
        case let list as [[String: Any]]:
            headers = try list.map { entry in
                guard let name = entry["key"] as? String else { throw failure("a header has no string \"key\"") }
                return RecordHeader(key: name, value: (entry["value"] as? String).map { Array($0.utf8) })
            }
        default: throw failure("\"headers\" must be an object or a list of {key, value}")
        }
        if let p = object["partition"], !(p is NSNull) {
            guard let n = p as? Int, n >= 0, n <= Int(Int32.max) else { throw failure("\"partition\" must be a non-negative integer") }
            partition = Int32(n)
        }
        if let t = object["timestamp"], !(t is NSNull) {
            guard let n = t as? Int64 ?? (t as? Int).map(Int64.init) else { throw failure("\"timestamp\" must be an integer") }
            timestamp = n
        }
    }
}
