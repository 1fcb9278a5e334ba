/// `once produce --format`: rpk-style input patterns such as `%k %v` or `%p|%T|%k|%v`, so lines
/// written by another tool need no reshaping. Each field reaches up to the literal text after it
/// (the last one to the end of the line), so two fields may not touch.
struct ProduceLineFormat {
    enum Field: Equatable { case key, value, partition, timestamp }
    enum Piece: Equatable {
        case literal(String)
        case field(Field)
    }

    let pieces: [Piece]

    struct Parsed {
        var key: [UInt8]?
        var value: [UInt8] = []
        var partition: Int32?
        var timestamp: Int64?
    }

    init(_ pattern: String) throws {
        var pieces: [Piece] = []
        var literal = ""
        var characters = pattern.makeIterator()
        while let c = characters.next() {
            if c == "%" {
                guard let d = characters.next() else { throw CommandFailure("--format ends in a lone '%'") }
                let field: Field? = switch d {
                case "k": .key
                case "v", "s": .value
                case "p": .partition
                case "T": .timestamp
                case "%": nil
                default: throw CommandFailure("--format: unknown token '%\(d)' (known: %k %v %p %T %%)")
                }
                guard let field else { literal.append("%"); continue }
                if !literal.isEmpty { pieces.append(.literal(literal)); literal = "" }
                if case .field = pieces.last { throw CommandFailure("--format: two fields must be separated by text") }
                guard !pieces.contains(.field(field)) else { throw CommandFailure("--format: %\(d) appears twice") }
                pieces.append(.field(field))
            } else if c == "\\", let d = characters.next() {
                literal.append(d == "t" ? "\t" : d == "n" ? "\n" : d)
            } else {
                literal.append(c)
            }
        }
        if !literal.isEmpty { pieces.append(.literal(literal)) }
        guard pieces.contains(.field(.value)) else { throw CommandFailure("--format needs %v") }
        self.pieces = pieces
    }

    func parse(_ line: String, lineNumber: Int) throws -> Parsed {
        func failure(_ why: String) -> CommandFailure { CommandFailure("line \(lineNumber) does not match --format: \(why)") }
        var rest = Substring(line)
        var parsed = Parsed()
        for (i, piece) in pieces.enumerated() {
            switch piece {
            case .literal(let text):
                guard rest.hasPrefix(text) else { throw failure("expected '\(text)'") }
                rest = rest.dropFirst(text.count)
            case .field(let field):
                var text = rest
                if i + 1 < pieces.count, case .literal(let next) = pieces[i + 1] {
                    guard let end = rest.range(of: next) else { throw failure("no '\(next)' after a field") }
                    text = rest[..<end.lowerBound]
                }
                rest = rest[text.endIndex...]
                switch field {
                case .key: parsed.key = Array(text.utf8)
                case .value: parsed.value = Array(text.utf8)
                case .partition:
                    guard let p = Int32(text), p >= 0 else { throw failure("partition '\(text)' is not a number") }
                    parsed.partition = p
                case .timestamp:
                    guard let t = Int64(text) else { throw failure("timestamp '\(text)' is not a number") }
                    parsed.timestamp = t
                }
            }
        }
        return parsed
    }
}
