/* backend_pool.c: the zm_be_* interface over the pool allocator (src/pool).
 *
 * Only glue: the fast paths are the inline functions of pool/pool.h, so with
 * link-time optimisation zm_be_malloc/zm_be_free compile into the front end
 * as a TLS load, a table index and a list pop (or push). The usable size
 * the front end passes to zm_be_free is not needed: the page knows. The
 * pool keeps the exact used-memory total itself (ZM_BACKEND_COUNTS): the
 * front end adds no counter of its own.
 */
#include <stdio.h>

#include "backend.h"
#include "pool/pool.h"

void *zm_be_malloc(size_t size, size_t *usable) {
    return zp_malloc_fast(size, usable);
}

void *zm_be_malloc_fast(size_t size, size_t *usable) {
    return zp_malloc_try(size, usable);
}

void *zm_be_calloc(size_t size, size_t *usable) {
    return zp_calloc(size, usable);
}

void *zm_be_realloc(void *ptr, size_t size, size_t *usable) {
    return zp_realloc(ptr, size, usable);
}

void *zm_be_aligned_alloc(size_t alignment, size_t size, size_t *usable) {
    /* Blocks of the 8-byte-step classes are only 8-aligned (pool.h): a
     * larger alignment rounds the size up to a multiple of it. */
    if (alignment <= 8) return zp_malloc_fast(size, usable);
    return zp_aligned_alloc(alignment, size, usable);
}

size_t zm_be_usable_size(const void *ptr) {
    return zp_usable_size(ptr);
}

void zm_be_free(void *ptr, size_t usable) {
    (void)usable;
    zp_free_fast(ptr);
}

void zm_be_thread_exit(void) {
    zp_heap_thread_exit();
}

void zm_be_fork_prepare(void) {
    zp_heap_fork_prepare();
}

void zm_be_fork_parent(void) {
    zp_heap_fork_parent();
}

void zm_be_fork_child(void) {
    zp_heap_fork_child();
}

int zm_be_purge(void) {
    return zp_purge();
}

/* The pool counts its blocks per class and thread (the one counter on the
 * fast path): that is the used-memory total, and the allocated figure. */
size_t zm_be_used_memory(void) {
    return zp_used_bytes();
}

void zm_be_get_stats(int refresh, zm_be_stats *out) {
    /* The counters are always current; refreshing also gives back this
     * thread's pages that other threads' frees emptied (pool/defrag.c). */
    if (refresh) zp_defrag_sweep(zp_tl_heap);
    zp_stats st;
    zp_stats_get(&st);
    out->allocated = st.allocated;
    out->active = st.active;
    out->resident = st.resident;
    out->retained = st.retained;
    out->muzzy = st.muzzy;
    out->frag_smallbins = st.frag_smallbins;
}

void zm_be_print_stats(FILE *out, int json) {
    zp_stats_print(out, json);
}

const char *zm_be_version(void) {
    return "pool";
}
