#ifndef ONCE_CLIBPQ_SHIM_H
#define ONCE_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
