/* Thin shim that replaces Redis's src/zmalloc.h when tests/redis/check.sh
 * builds Redis on zmalloc. Everything comes from zmalloc's installed header,
 * found through -I<prefix>/include on Redis's REDIS_CFLAGS. Angle brackets:
 * the search skips this file's own directory, so this does not include
 * itself.
 *
 * Redis 7.0 and 7.2 declare the three-argument zmalloc_get_allocator_info()
 * and `int jemalloc_purge()`; zmalloc's header serves that form when
 * ZMALLOC_REDIS_API is below 74. check.sh passes the right value for the
 * Redis it builds (-DZMALLOC_REDIS_API=70 for Debian bookworm's 7.0.15);
 * the default below is for a build without it. */
#ifndef __ZMALLOC_H
#define __ZMALLOC_H

#ifndef ZMALLOC_REDIS_API
#define ZMALLOC_REDIS_API 70
#endif

#include <zmalloc.h>

#endif /* __ZMALLOC_H */
