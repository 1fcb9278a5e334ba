import CCRC32C
import NIOCore

/// CRC-32C (Castagnoli), the checksum of RecordBatch v2. Backed by the C target so the hot path
/// uses the CPU's CRC instruction where there is one.
public enum CRC32C {
    /// `seed` is the checksum of whatever came before, so a checksum can be computed in pieces.
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return seed }
        return once_crc32c(seed, base, bytes.count)
    }

    /// The checksum of the buffer's readable bytes.
    @inlinable
    public static func checksum(_ buffer: ByteBuffer, seed: UInt32 = 0) -> UInt32 {
        buffer.withUnsafeReadableBytes { checksum($0, seed: seed) }
    }

    public static func checksum<C: Collection<UInt8>>(_ bytes: C, seed: UInt32 = 0) -> UInt32 {
        if let crc = bytes.withContiguousStorageIfAvailable({ checksum(UnsafeRawBufferPointer($0), seed: seed) }) {
            return crc
        }
        return Array(bytes).withUnsafeBytes { checksum($0, seed: seed) }
    }

    /// The table-driven path alone, whatever the CPU offers; for tests that hold the two paths
    /// against each other.
    public static func softwareChecksum(_ bytes: UnsafeRawBufferPointer, seed: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return seed }
        return once_crc32c_sw(seed, base, bytes.count)
    }

    /// Whether `checksum` runs on a CPU instruction on this machine.
    public static var isHardwareAccelerated: Bool { once_crc32c_hardware_available() != 0 }
}
