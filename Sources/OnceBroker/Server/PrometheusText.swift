/// Prometheus text exposition (format 0.0.4) for the families computed at scrape time, which live
/// outside the swift-metrics registry so a deleted partition or group simply stops being written.
struct PrometheusText {
    private(set) var bytes: [UInt8] = []

    mutating func family(_ name: String, _ type: String, help: String) {
        bytes.append(contentsOf: "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n".utf8)
    }

    mutating func sample(_ name: String, _ value: Int64) {
        write(name, [], String(value))
    }

    mutating func sample(_ name: String, _ value: Double) {
        sample(name, [], value)
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Int64) {
        write(name, labels, String(value))
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
        write(name, labels, value.isFinite ? String(value) : value.isNaN ? "NaN" : value > 0 ? "+Inf" : "-Inf")
    }

    private mutating func write(_ name: String, _ labels: [(String, String)], _ value: String) {
        bytes.append(contentsOf: name.utf8)
        if !labels.isEmpty {
            bytes.append(UInt8(ascii: "{"))
            for (index, (key, labelValue)) in labels.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                bytes.append(contentsOf: key.utf8)
                bytes.append(contentsOf: "=\"".utf8)
                Self.escape(labelValue, into: &bytes)
                bytes.append(UInt8(ascii: "\""))
            }
            bytes.append(UInt8(ascii: "}"))
        }
        bytes.append(UInt8(ascii: " "))
        bytes.append(contentsOf: value.utf8)
        bytes.append(UInt8(ascii: "\n"))
    }

    /// Group ids are any string a client chose: a quote or newline in one must not end the sample.
    static func escape(_ value: String, into bytes: inout [UInt8]) {
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): bytes.append(contentsOf: "\\\\".utf8)
            case UInt8(ascii: "\""): bytes.append(contentsOf: "\\\"".utf8)
            case UInt8(ascii: "\n"): bytes.append(contentsOf: "\\n".utf8)
            default: bytes.append(byte)
            }
        }
    }
}
