/* Thin shim that replaces a server's src/zmalloc.h when tests/redis/check.sh
 * builds Redis or Valkey on zmalloc. Everything comes from zmalloc's
 * installed header, found through -I<prefix>/include on the server's
 * REDIS_CFLAGS. Angle brackets: the search skips this file's own directory,
 * so this does not include itself.
 *
 * The declarations a server expects differ by family and version
 * (zmalloc_get_allocator_info with 3, 5, 6 or 7 arguments, ...):
 * check.sh passes -DZMALLOC_SERVER_API=<value> for the server it builds
 * (70 for Debian bookworm's Redis 7.0.15, 74 for Redis 7.4, 180 for Valkey
 * 8.0, 191 for Valkey 9.1; zmalloc.h lists them). Without it the header's
 * default, Redis 8.x, applies. */
#ifndef __ZMALLOC_H
#define __ZMALLOC_H

#include <zmalloc.h>

#endif /* __ZMALLOC_H */
