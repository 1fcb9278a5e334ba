import NIOCore

/// The record inside a control batch. Transaction markers (commit/abort) are the ones a broker writes
/// and read_committed consumers act on; other types (KRaft's leader change, snapshots) pass through
/// as their type alone.
public struct ControlRecord: Sendable, Hashable {
    /// The type in a control record's key. A struct rather than an enum because the set grows.
    public struct ControlType: RawRepresentable, Sendable, Hashable {
        public var rawValue: Int16
        public init(rawValue: Int16) { self.rawValue = rawValue }

        public static let abort = ControlType(rawValue: 0)
        public static let commit = ControlType(rawValue: 1)

        /// Whether the type is a transaction marker, whose value carries a coordinator epoch.
        public var isTransactionMarker: Bool { self == .abort || self == .commit }
    }

    public var type: ControlType
    /// The transaction coordinator's epoch (markers only; 0 elsewhere). Lets a broker fence markers
    /// from a coordinator that has since moved.
    public var coordinatorEpoch: Int32

    public init(type: ControlType, coordinatorEpoch: Int32) {
        self.type = type
        self.coordinatorEpoch = coordinatorEpoch
    }

    public static func marker(commit: Bool, coordinatorEpoch: Int32) -> ControlRecord {
        ControlRecord(type: commit ? .commit : .abort, coordinatorEpoch: coordinatorEpoch)
    }

    /// The record to put in a control batch. Key: version int16 (0), type int16. Marker value:
    /// version int16 (0), coordinator epoch int32.
    public func record(offsetDelta: Int32 = 0, timestampDelta: Int64 = 0) -> Record {
        var key = ByteBuffer()
        key.writeInteger(Int16(0), endianness: .big)
        key.writeInteger(type.rawValue, endianness: .big)
        var value: [UInt8]? = nil
        if type.isTransactionMarker {
            var v = ByteBuffer()
            v.writeInteger(Int16(0), endianness: .big)
            v.writeInteger(coordinatorEpoch, endianness: .big)
            value = Array(v.readableBytesView)
        }
        return Record(
            timestampDelta: timestampDelta, offsetDelta: offsetDelta,
            key: Array(key.readableBytesView), value: value)
    }

    /// Reads a control record. Versions newer than 0 are accepted when they lead with the same fields,
    /// as Kafka does, so a newer writer's markers still read.
    public init(decoding record: Record) throws {
        let type = try Self.type(of: record)
        var epoch: Int32 = 0
        if type.isTransactionMarker {
            guard let valueBytes = record.value else { throw KafkaProtocolError.invalid("transaction marker without value") }
            var value = ByteBuffer(bytes: valueBytes)
            let version: Int16 = try value.readKafkaInt()
            guard version >= 0 else { throw KafkaProtocolError.invalid("transaction marker version \(version)") }
            epoch = try value.readKafkaInt()
        }
        self.init(type: type, coordinatorEpoch: epoch)
    }

    /// Only the type, from the key; enough to tell a commit from an abort without reading the value.
    public static func type(of record: Record) throws -> ControlType {
        guard let keyBytes = record.key else { throw KafkaProtocolError.invalid("control record without key") }
        var key = ByteBuffer(bytes: keyBytes)
        let version: Int16 = try key.readKafkaInt()
        guard version >= 0 else { throw KafkaProtocolError.invalid("control record version \(version)") }
        return ControlType(rawValue: try key.readKafkaInt())
    }
}

extension RecordBatch {
    /// A transaction marker batch as the coordinator has the partition leader write it: transactional,
    /// control, one record, under the producer's id and epoch, with no sequence.
    public static func encodeMarker(
        _ marker: ControlRecord,
        producerId: Int64,
        producerEpoch: Int16,
        baseOffset: Int64 = 0,
        timestamp: Int64,
        partitionLeaderEpoch: Int32 = -1
    ) -> ByteBuffer {
        encode(
            records: [marker.record()],
            baseOffset: baseOffset,
            baseTimestamp: timestamp,
            partitionLeaderEpoch: partitionLeaderEpoch,
            producerId: producerId,
            producerEpoch: producerEpoch,
            baseSequence: -1,
            isTransactional: true,
            isControl: true
        )
    }
}
