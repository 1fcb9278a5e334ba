#ifndef ONCE_CSNAPPY_SHIM_H
#define ONCE_CSNAPPY_SHIM_H
// The C binding of the C++ library; Swift needs no C++ interop for it.
#include <snappy-c.h>
#endif
