import KafkaProtocol
import NIOCore
import OnceCore

/// A stored batch as the cleaning plan sees it, and as a plan's outcome leaves it: shared by every
/// engine, so each writes exactly the bytes the others would.
package enum CleanedBatch {
    /// The plan's view of a batch. With `withRecords` false a data batch's records are left out
    /// (the transaction scan needs only headers), so compressed batches are not inflated for it.
    package static func planBatch(_ header: RecordBatchHeader, bytes: ByteBuffer, withRecords: Bool = true) throws -> CleaningPlan.Batch {
        let kind: CleaningPlan.Kind
        var records: [Record] = []
        if header.isControl {
            records = try Self.records(of: header, in: bytes)
            if let first = records.first, let marker = try? ControlRecord(decoding: first), marker.type.isTransactionMarker {
                kind = .marker(commit: marker.type == .commit)
            } else {
                kind = .otherControl
            }
        } else {
            kind = .data
            if withRecords { records = try Self.records(of: header, in: bytes) }
        }
        return CleaningPlan.Batch(
            baseOffset: header.baseOffset, lastOffset: header.lastOffset, producerId: header.producerId,
            isTransactional: header.isTransactional, kind: kind,
            records: kind == .data
                ? records.map { .init(offset: header.baseOffset + Int64($0.offsetDelta), key: $0.key, isTombstone: $0.value == nil) }
                : [],
            deleteHorizonMs: header.hasDeleteHorizon ? header.baseTimestamp : nil)
    }

    /// The batch as the outcome leaves it; nil when it goes.
    package static func apply(_ outcome: CleaningPlan.Outcome, to batch: ByteBuffer) throws -> ByteBuffer? {
        switch outcome {
        case .keep:
            return batch
        case .remove:
            return nil
        case .keepRecords(let kept, let horizon):
            return try rewrite(batch, keeping: kept, deleteHorizonMs: horizon)
        case .stampDeleteHorizon(let horizon):
            let header = try RecordBatchHeader(reading: batch, at: batch.readerIndex)
            return try rewrite(batch, keeping: Array(0..<Int(header.recordCount)), deleteHorizonMs: horizon)
        }
    }

    /// A stored batch's records, inflated when compressed.
    static func records(of header: RecordBatchHeader, in batch: ByteBuffer) throws -> [Record] {
        if header.compression == .none {
            var bytes = batch
            return try RecordBatch.decode(from: &bytes).records
        }
        let inflated = try batch.withUnsafeReadableBytes { raw in
            try RecordDecompressor.decompress(
                header.compression, UnsafeRawBufferPointer(rebasing: raw[RecordBatchHeader.size...]), limit: Int(Int32.max)
            ).get()
        }
        var buffer = ByteBuffer(bytes: inflated)
        return try (0..<header.recordCount).map { _ in try Record.decode(from: &buffer) }
    }

    /// The batch with only the records at `kept`: the same base and last offset, timestamps and
    /// producer fields (so the producer's last sequence survives), compressed again with its codec
    /// as Kafka's cleaner does, with a new length and CRC. An emptied batch is left uncompressed.
    /// A delete horizon goes where KIP-534 puts it, in the base timestamp with the attribute bit
    /// set; the records' deltas are rebased on it so every record keeps its timestamp.
    static func rewrite(_ batch: ByteBuffer, keeping kept: [Int], deleteHorizonMs: Int64? = nil) throws -> ByteBuffer {
        var header = try RecordBatchHeader(reading: batch, at: batch.readerIndex)
        var records = try Self.records(of: header, in: batch)
        if let deleteHorizonMs {
            for i in kept { records[i].timestampDelta += header.baseTimestamp - deleteHorizonMs }
            header.baseTimestamp = deleteHorizonMs
        }
        var section = ByteBufferAllocator().buffer(capacity: kept.reduce(0) { $0 + records[$1].encodedSize })
        for i in kept { records[i].encode(into: &section) }
        let codec = kept.isEmpty ? .none : header.compression
        let body = try section.withUnsafeReadableBytes { try RecordCompressor.compress(codec, $0) }
        header.attributes = RecordBatchHeader.attributes(
            compression: codec, timestampType: header.timestampType, isTransactional: header.isTransactional,
            isControl: header.isControl, hasDeleteHorizon: header.hasDeleteHorizon || deleteHorizonMs != nil)
        header.recordCount = Int32(kept.count)
        header.batchLength = Int32(RecordBatchHeader.size - RecordBatchHeader.logOverhead + body.count)
        header.crc = 0
        var out = ByteBufferAllocator().buffer(capacity: RecordBatchHeader.size + body.count)
        header.write(into: &out)
        out.writeBytes(body)
        let crc = out.withUnsafeReadableBytes {
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[RecordBatchHeader.attributesOffset...]))
        }
        out.setInteger(crc, at: RecordBatchHeader.crcOffset, endianness: .big)
        return out
    }
}
