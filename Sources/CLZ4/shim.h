#ifndef ONCE_CLZ4_SHIM_H
#define ONCE_CLZ4_SHIM_H
// Kafka's lz4 codec is the LZ4 frame format, so the frame API is the one needed.
#include <lz4frame.h>
#endif
