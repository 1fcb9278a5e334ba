#ifndef ONCE_CZLIB_SHIM_H
#define ONCE_CZLIB_SHIM_H
#include <zlib.h>

// deflateInit2/inflateInit2 are macros, which Swift cannot call; these wrap them.
// windowBits 15 + 16 writes a gzip header and trailer, as Kafka's gzip codec expects;
// 15 + 32 accepts gzip or zlib framing on the way in.
static inline int once_gzip_deflate_init(z_stream *stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}

static inline int once_gzip_inflate_init(z_stream *stream) {
    return inflateInit2(stream, 15 + 32);
}
#endif
