import Foundation
import OnceCheck

/// Histories on disk: one JSON event per line, so a run can be checked again later and a
/// hand-written history can exercise the checker end to end.
public enum HistoryFile {
    public struct Malformed: Error, CustomStringConvertible {
        public var line: Int
        public var reason: String
        public var description: String { "history line \(line): \(reason)" }
    }

    public static func encode(_ events: [HistoryEvent]) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = Data()
        for event in events {
            data.append(try! encoder.encode(event))
            data.append(UInt8(ascii: "\n"))
        }
        return data
    }

    /// Blank lines are skipped; anything else that is not an event fails with its line number.
    public static func decode(_ data: Data) throws -> [HistoryEvent] {
        let decoder = JSONDecoder()
        var events: [HistoryEvent] = []
        for (number, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() {
            if line.allSatisfy({ $0 == UInt8(ascii: " ") || $0 == UInt8(ascii: "\r") || $0 == UInt8(ascii: "\t") }) {
                continue
            }
            do {
                events.append(try decoder.decode(HistoryEvent.self, from: Data(line)))
            } catch {
                throw Malformed(line: number + 1, reason: "\(error)")
            }
        }
        return events
    }
}
