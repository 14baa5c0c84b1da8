/* Thin shim that replaces Redis's src/zmalloc.c when tests/redis/check.sh
 * builds Redis on zmalloc. Redis's Makefile compiles zmalloc.c into
 * zmalloc.o, so the file must exist; every function lives in libzmalloc,
 * linked through Redis's FINAL_LIBS. Including the header keeps this
 * translation unit non-empty (ISO C) and checks the header compiles alone
 * with Redis's flags. */
#include "zmalloc.h"
