/// The codec in bits 0-2 of a batch's attributes. Ids 5-7 are unassigned and rejected on decode.
public enum CompressionCodec: Int16, Sendable, Hashable, CaseIterable {
    case none = 0
    case gzip = 1
    case snappy = 2
    case lz4 = 3
    case zstd = 4

    /// The names Kafka's `compression.type` uses, which clients take on their command lines too.
    public var name: String {
        switch self {
        case .none: "none"
        case .gzip: "gzip"
        case .snappy: "snappy"
        case .lz4: "lz4"
        case .zstd: "zstd"
        }
    }

    public init?(name: String) {
        guard let codec = Self.allCases.first(where: { $0.name == name }) else { return nil }
        self = codec
    }
}

/// Bit 3 of a batch's attributes: whose clock the record timestamps come from.
public enum TimestampType: Sendable, Hashable {
    /// The producer's timestamps, one per record.
    case createTime
    /// The broker's append time, held once as the batch's maxTimestamp for every record.
    case logAppendTime
}
