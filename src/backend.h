/* backend.h: the internal interface every allocator backend implements.
 *
 * The front end (zmalloc.c) owns everything Redis's zmalloc layer does on
 * top of malloc: accounting, the OOM handler, try/usable variants, the size
 * prefix, reclaim-and-retry and memory limits. A backend only moves memory.
 * Exactly one backend_<name>.c is compiled into a build (CMake option
 * ZMALLOC_MALLOC); the build uses link-time optimisation so these small
 * functions inline into the front end's fast path.
 *
 * Contract for every function below:
 *  - sizes passed in are > 0 and < SIZE_MAX/2 (the front end filters the rest);
 *  - pointers passed in are non-NULL and were returned by this backend;
 *  - failure returns NULL (errno ENOMEM) and leaves any input block untouched;
 *  - nothing here updates zmalloc's accounting.
 */
#ifndef ZMALLOC_BACKEND_H
#define ZMALLOC_BACKEND_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "zmalloc_config.h"

/* 1 when zm_be_usable_size() exists; otherwise the front end stores a size
 * prefix in front of each block (Redis's path for platforms without
 * malloc_usable_size). */
#define ZM_BACKEND_HAS_SIZE ZMALLOC_HAVE_MALLOC_SIZE

/* Allocation: on success *usable (never NULL) receives the usable size of
 * the returned block, computed as cheaply as the backend can (from the size
 * class, not a lookup where possible). On the size-prefix path (no
 * ZM_BACKEND_HAS_SIZE) *usable is simply the size requested. */
void *zm_be_malloc(size_t size, size_t *usable);
void *zm_be_calloc(size_t size, size_t *usable);
void *zm_be_realloc(void *ptr, size_t size, size_t *usable);
/* alignment: a power of two >= sizeof(void *), any size. */
void *zm_be_aligned_alloc(size_t alignment, size_t size, size_t *usable);
#if ZM_BACKEND_HAS_SIZE
size_t zm_be_usable_size(const void *ptr);
#endif
/* usable is the block's usable size as the caller knows it (from
 * zm_be_usable_size or the prefix), or ZM_USABLE_UNKNOWN when the caller
 * has not looked it up (zfree on a backend that counts for itself, the
 * preload library's free): a backend with a sized free (jemalloc's
 * sdallocx) would use a known size to skip a lookup and look it up itself
 * otherwise; the others ignore it. Never a made-up size. */
#define ZM_USABLE_UNKNOWN SIZE_MAX
void zm_be_free(void *ptr, size_t usable);

/* The backend's own view of the whole process heap, in bytes.
 * allocated <= active <= resident should hold, roughly. A figure the
 * backend cannot measure is estimated and the estimate documented in
 * include/zmalloc.h; it is never left at 0 for a non-empty heap. */
typedef struct zm_be_stats {
    size_t allocated;      /* bytes in live blocks (usable sizes)            */
    size_t active;         /* bytes in pages that hold at least one block    */
    size_t resident;       /* bytes of allocator memory resident in RAM      */
    size_t retained;       /* mapped but returned to the OS (not resident)   */
    size_t muzzy;          /* released lazily (MADV_FREE), may still be RSS  */
    size_t frag_smallbins; /* free bytes inside partly used small slabs      */
} zm_be_stats;

void zm_be_get_stats(int refresh, zm_be_stats *out);

/* 1 when the backend has a fast path with no side effects on failure:
 * zm_be_malloc_fast() returns a block (size 0 allowed, *usable set) or
 * NULL, having done nothing, when the request is not one it serves at
 * once; the caller then takes its slow path (zm_be_malloc). The front end
 * can then keep its own fast path free of calls, so it needs no stack
 * frame. */
#define ZM_BACKEND_HAS_FAST ZMALLOC_BACKEND_POOL
#if ZM_BACKEND_HAS_FAST
void *zm_be_malloc_fast(size_t size, size_t *usable);
#endif

/* 1 when the backend counts the usable bytes of live blocks exactly
 * itself: the front end then keeps no counter of its own and
 * zmalloc_used_memory() is zm_be_used_memory(), which must be lock-free
 * and async-signal-safe and exact at quiet moments. */
#define ZM_BACKEND_COUNTS ZMALLOC_BACKEND_POOL
#if ZM_BACKEND_COUNTS
size_t zm_be_used_memory(void);
#endif
/* Return free memory to the OS now. 0 on success. */
int zm_be_purge(void);
/* Human-readable (json == 0) or JSON (json != 0) statistics to out. */
void zm_be_print_stats(FILE *out, int json);
/* Backend name and version, e.g. "jemalloc-5.3.0"; a static string. */
const char *zm_be_version(void);

/* Lifecycle hooks (lifecycle.h), for a backend with per-thread or global
 * state of its own to keep across thread exit and fork. The others (whose
 * allocators handle fork and thread exit themselves) define none. */
#define ZM_BACKEND_HAS_LIFECYCLE ZMALLOC_BACKEND_POOL
#if ZM_BACKEND_HAS_LIFECYCLE
void zm_be_thread_exit(void);
void zm_be_fork_prepare(void);
void zm_be_fork_parent(void);
void zm_be_fork_child(void);
#endif

/* Pool only: active defragmentation (src/pool/defrag.c). The hint is 1
 * when moving the block at ptr would help; the allocation returns a block
 * of size from a page the last hint did not choose to empty, or NULL when it
 * has none (the caller then allocates normally). No accounting here. */
#if ZMALLOC_BACKEND_POOL
int zm_be_defrag_hint(const void *ptr);
void *zm_be_defrag_alloc(size_t size, size_t *usable);
#endif

/* jemalloc-only entries behind Redis's *_with_flags, no_tcache and
 * per-arena calls. */
#if ZMALLOC_BACKEND_JEMALLOC
void *zm_be_je_mallocx(size_t size, int flags, size_t *usable);
void *zm_be_je_rallocx(void *ptr, size_t size, int flags, size_t *usable);
void zm_be_je_dallocx(void *ptr, int flags);
int zm_be_je_arena_stats(unsigned arena, int refresh, size_t *allocated, size_t *active,
                         size_t *resident, size_t *frag_smallbins);
void zm_be_je_background_thread(int enable);
/* 1 when the hot calls reach jemalloc's own malloc/calloc/free (found in
 * the object that defines mallocx), 0 when they use mallocx/dallocx. */
int zm_be_je_plain_entry_points(void);
#endif

#endif
