#ifndef ONCE_CZSTD_SHIM_H
#define ONCE_CZSTD_SHIM_H
#include <zstd.h>
#endif
