// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) with a hardware path and a table path.
//
// The hardware paths are compiled with per-function target attributes rather than package-wide
// compiler flags, so the rest of the binary still runs on CPUs that lack the instruction; which
// path runs is decided once, at first use, from what the running CPU reports.

#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82F63B78u

// Slicing-by-8 tables: table[k][b] is the CRC of byte b followed by k zero bytes.
static uint32_t crc32c_table[8][256];

typedef uint32_t (*crc32c_fn)(uint32_t crc, const unsigned char *p, size_t len);

static uint32_t crc32c_sw_raw(uint32_t crc, const unsigned char *p, size_t len);
static crc32c_fn crc32c_impl = crc32c_sw_raw;
static int crc32c_hw = 0;
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;

static void crc32c_build_tables(void) {
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = b;
        for (int k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        }
        crc32c_table[0][b] = c;
    }
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t c = crc32c_table[0][b];
        for (int t = 1; t < 8; t++) {
            c = crc32c_table[0][c & 0xFF] ^ (c >> 8);
            crc32c_table[t][b] = c;
        }
    }
}

static inline uint64_t load_le64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, sizeof v);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

// Works on the inverted register; callers invert on the way in and out.
static uint32_t crc32c_sw_raw(uint32_t crc, const unsigned char *p, size_t len) {
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        crc = crc32c_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
        len--;
    }
    while (len >= 8) {
        uint64_t word = load_le64(p) ^ crc;
        crc = crc32c_table[7][word & 0xFF] ^
              crc32c_table[6][(word >> 8) & 0xFF] ^
              crc32c_table[5][(word >> 16) & 0xFF] ^
              crc32c_table[4][(word >> 24) & 0xFF] ^
              crc32c_table[3][(word >> 32) & 0xFF] ^
              crc32c_table[2][(word >> 40) & 0xFF] ^
              crc32c_table[1][(word >> 48) & 0xFF] ^
              crc32c_table[0][word >> 56];
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        crc = crc32c_table[0][(crc ^ *p++) & 0xFF] ^ (crc >> 8);
        len--;
    }
    return crc;
}

#if defined(__x86_64__)
#include <cpuid.h>

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw_raw(uint32_t crc, const unsigned char *p, size_t len) {
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        crc = __builtin_ia32_crc32qi(crc, *p++);
        len--;
    }
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, sizeof word);
        c = __builtin_ia32_crc32di(c, word);
        p += 8;
        len -= 8;
    }
    crc = (uint32_t)c;
    while (len > 0) {
        crc = __builtin_ia32_crc32qi(crc, *p++);
        len--;
    }
    return crc;
}

// cpuid rather than __builtin_cpu_supports: the latter needs libgcc's or compiler-rt's CPU model
// symbols at link time, which not every Swift link line brings in.
static int crc32c_cpu_has_hw(void) {
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) {
        return 0;
    }
    return (ecx & bit_SSE4_2) != 0;
}
#define CRC32C_HAVE_HW_PATH 1

#elif defined(__aarch64__)
#include <arm_acle.h>
#if defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#endif

__attribute__((target("crc")))
static uint32_t crc32c_hw_raw(uint32_t crc, const unsigned char *p, size_t len) {
    while (len > 0 && ((uintptr_t)p & 7) != 0) {
        crc = __crc32cb(crc, *p++);
        len--;
    }
    while (len >= 8) {
        uint64_t word;
        memcpy(&word, p, sizeof word);
        crc = __crc32cd(crc, word);
        p += 8;
        len -= 8;
    }
    while (len > 0) {
        crc = __crc32cb(crc, *p++);
        len--;
    }
    return crc;
}

static int crc32c_cpu_has_hw(void) {
#if defined(__linux__)
    return (getauxval(AT_HWCAP) & HWCAP_CRC32) != 0;
#elif defined(__APPLE__)
    return 1;  // Every Apple arm64 CPU implements the CRC32 extension.
#else
    return 0;
#endif
}
#define CRC32C_HAVE_HW_PATH 1
#endif

static void crc32c_init(void) {
    crc32c_build_tables();
#ifdef CRC32C_HAVE_HW_PATH
    if (crc32c_cpu_has_hw()) {
        crc32c_impl = crc32c_hw_raw;
        crc32c_hw = 1;
    }
#endif
}

uint32_t once_crc32c(uint32_t crc, const void *data, size_t len) {
    pthread_once(&crc32c_once, crc32c_init);
    return ~crc32c_impl(~crc, (const unsigned char *)data, len);
}

uint32_t once_crc32c_sw(uint32_t crc, const void *data, size_t len) {
    pthread_once(&crc32c_once, crc32c_init);
    return ~crc32c_sw_raw(~crc, (const unsigned char *)data, len);
}

int once_crc32c_hardware_available(void) {
    pthread_once(&crc32c_once, crc32c_init);
    return crc32c_hw;
}
