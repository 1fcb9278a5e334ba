import Foundation
import OnceClient

/// How `once consume` prints a record: the historical value-per-line, kcat's `-f` format
/// strings (so scripts written for kcat keep working), or one JSON object per line for tools.
enum RecordFormat {
    case value(printKey: Bool)
    case pattern([Piece])
    case json

    enum Piece: Equatable {
        case literal(String)
        case topic, partition, offset, timestamp, key, keyLength, value, valueLength, headers
    }

    /// Parses kcat's format language: `%t %p %o %T %k %K %s %S %h %%` and the escapes
    /// `\n \r \t \\`. An unknown `%x` is an error rather than literal text, so a typo shows up
    /// at once instead of in the output.
    static func parse(_ format: String) throws -> RecordFormat {
        var pieces: [Piece] = []
        var literal = ""
        var characters = format.makeIterator()
        func flush() {
            if !literal.isEmpty { pieces.append(.literal(literal)) }
            literal = ""
        }
        while let c = characters.next() {
            switch c {
            case "%":
                guard let d = characters.next() else { throw FormatError("format ends in a lone '%'") }
                let piece: Piece? = switch d {
                case "t": .topic
                case "p": .partition
                case "o": .offset
                case "T": .timestamp
                case "k": .key
                case "K": .keyLength
                case "s": .value
                case "S": .valueLength
                case "h": .headers
                case "%": nil
                default: throw FormatError("unknown format token '%\(d)' (known: %t %p %o %T %k %K %s %S %h %%)")
                }
                if let piece {
                    flush()
                    pieces.append(piece)
                } else {
                    literal.append("%")
                }
            case "\\":
                guard let d = characters.next() else { literal.append("\\"); break }
                switch d {
                case "n": literal.append("\n")
                case "r": literal.append("\r")
                case "t": literal.append("\t")
                case "\\": literal.append("\\")
                default: literal.append("\\"); literal.append(d)
                }
            default:
                literal.append(c)
            }
        }
        flush()
        return .pattern(pieces)
    }

    struct FormatError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    /// The text for one record, with its line ending when the format implies one.
    func render(_ record: ConsumerRecord) -> String {
        switch self {
        case .value(let printKey):
            let value = text(record.value) ?? "null"
            return printKey ? "\(text(record.key) ?? "null")\t\(value)\n" : "\(value)\n"
        case .pattern(let pieces):
            return pieces.map { piece -> String in
                switch piece {
                case .literal(let s): s
                case .topic: record.topicPartition.topic
                case .partition: String(record.topicPartition.partition)
                case .offset: String(record.offset)
                case .timestamp: String(record.timestamp)
                case .key: text(record.key) ?? ""
                case .keyLength: String(record.key.map { $0.count } ?? -1)
                case .value: text(record.value) ?? ""
                case .valueLength: String(record.value.map { $0.count } ?? -1)
                case .headers: record.headers.map { "\($0.key)=\(text($0.value) ?? "")" }.joined(separator: ",")
                }
            }.joined()
        case .json:
            let object: [String: Any] = [
                "topic": record.topicPartition.topic,
                "partition": Int(record.topicPartition.partition),
                "offset": Int(record.offset),
                "timestamp": Int(record.timestamp),
                "key": text(record.key) ?? NSNull(),
                "value": text(record.value) ?? NSNull(),
                "headers": record.headers.map { ["key": $0.key, "value": text($0.value) ?? NSNull()] as [String: Any] },
            ]
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
            return String(decoding: data, as: UTF8.self) + "\n"
        }
    }

    private func text(_ bytes: [UInt8]?) -> String? {
        bytes.map { String(decoding: $0, as: UTF8.self) }
    }
}
