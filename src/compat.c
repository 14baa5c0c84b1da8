/* compat.c: the server-version forms of the zmalloc API.
 *
 * Redis and Valkey grew their zmalloc.h apart after 7.2: the allocator
 * statistics call lost and gained arguments, zmadvise_dontneed took a size
 * hint, Redis 8 and Valkey 8 added calls that hand back a size the caller
 * already knows, and Valkey 8.1 renamed the allocation calls (valkey_*)
 * because zlib defines a zcalloc of its own. include/zmalloc.h declares the
 * form one server expects (ZMALLOC_SERVER_API); this file exports all of
 * them, so one library serves every server.
 *
 * Everything here is a thin layer over the front end's public functions
 * (src/zmalloc.c): no accounting of its own, so used memory stays exact
 * whichever form a server calls. Compiled with the default API value, so
 * the names below are the library's own, not a server's alias.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <string.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "platform.h"
#include "zmalloc.h"

/* Cache line of the x86-64 and arm64 machines servers run on; Valkey 9.1
 * aligns its queue cells to it to keep threads off each other's lines. */
#define ZM_CACHE_LINE 64

/* ---- statistics in the Valkey forms ------------------------------------- */

/* Valkey's forms have no refresh flag: its zmalloc.c refreshes jemalloc's
 * statistics on every call, and so do these. */
int zmalloc_get_allocator_info_valkey80(size_t *allocated, size_t *active, size_t *resident,
                                        size_t *retained, size_t *muzzy,
                                        size_t *frag_smallbins_bytes) {
    return zmalloc_get_allocator_info_full(1, allocated, active, resident, retained, muzzy,
                                           frag_smallbins_bytes);
}

int zmalloc_get_allocator_info_valkey91(size_t *allocated, size_t *active, size_t *resident,
                                        size_t *retained, size_t *muzzy) {
    return zmalloc_get_allocator_info_full(1, allocated, active, resident, retained, muzzy, NULL);
}

/* ---- calls that carry a size the caller knows --------------------------- */

/* The size is a hint the front end does not need: every backend finds a
 * block's size from its pointer at least as cheaply as it could check one. */
void zfree_with_size(void *ptr, size_t size) {
    (void)size;
    zfree(ptr);
}

void *zrealloc_usable2(void *ptr, size_t size, size_t *usable, size_t *old_usable) {
    if (old_usable) *old_usable = ptr ? zmalloc_usable_size(ptr) : 0;
    return zrealloc_usable(ptr, size, usable);
}

void *ztryrealloc_usable2(void *ptr, size_t size, size_t *usable, size_t *old_usable) {
    if (old_usable) *old_usable = ptr ? zmalloc_usable_size(ptr) : 0;
    return ztryrealloc_usable(ptr, size, usable);
}

char *zstrdup_usable(const char *s, size_t *usable) {
    size_t len = strlen(s) + 1;
    char *copy = zmalloc_usable(len, usable);
    memcpy(copy, s, len);
    return copy;
}

void *zmalloc_cache_aligned(size_t size) {
    return zmalloc_aligned(ZM_CACHE_LINE, size);
}

/* ---- Valkey 8.1+'s names ------------------------------------------------- */

void *valkey_malloc(size_t size) {
    return zmalloc(size);
}

void *valkey_calloc(size_t size) {
    return zcalloc(size);
}

void *valkey_realloc(void *ptr, size_t size) {
    return zrealloc(ptr, size);
}

void valkey_free(void *ptr) {
    zfree(ptr);
}

/* ---- pages back to the OS ------------------------------------------------ */

/* Half a page of hint is Valkey's own cut-off as well: below it a block
 * cannot hold a whole page, so the allocator is not even asked. */
void zmadvise_dontneed_hint(void *ptr, size_t size_hint) {
    if (ptr == NULL) return;
    if (size_hint != 0 && size_hint / 2 < zm_os_page_size()) return;
    zmadvise_dontneed(ptr);
}

void zmadvise_dontneed_range(void *ptr, size_t size) {
    if (ptr == NULL || size == 0) return;
    zm_os_decommit(ptr, size);
}

void zlibc_trim(void) {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}
