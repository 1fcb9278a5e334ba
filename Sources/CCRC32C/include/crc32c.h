#ifndef ONCE_CRC32C_H
#define ONCE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// CRC-32C (Castagnoli), as Kafka's RecordBatch v2 uses it.
///
/// `crc` is the checksum of the bytes that came before (0 to start), so a checksum can be built
/// from pieces: once_crc32c(once_crc32c(0, a, n), b, m) equals the checksum of a followed by b.
/// Uses the CPU's CRC32C instruction (SSE4.2 on x86_64, the CRC extension on aarch64) when the
/// machine running the code has it, chosen once at first use, and the table otherwise.
uint32_t once_crc32c(uint32_t crc, const void *data, size_t len);

/// The portable table-driven (slicing-by-8) path, always available; exported so tests can check
/// the hardware path against it.
uint32_t once_crc32c_sw(uint32_t crc, const void *data, size_t len);

/// 1 when once_crc32c uses a hardware instruction on this machine, 0 when it uses the table.
int once_crc32c_hardware_available(void);

#ifdef __cplusplus
}
#endif

#endif
