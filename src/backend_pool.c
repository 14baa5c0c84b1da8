/* backend_pool.c: the zm_be_* interface over the pool allocator (src/pool).
 *
 * Only glue: the fast paths are the inline functions of pool/pool.h, so with
 * link-time optimisation zm_be_malloc/zm_be_free compile into the front end
 * as a TLS load, a class computation and a list pop (or push). The usable
 * size the front end passes to zm_be_free is not needed: the page knows.
 */
#include <errno.h>
#include <string.h>

#include "backend.h"
#include "pool/pool.h"

void *zm_be_malloc(size_t size, size_t *usable) {
    return zp_malloc_fast(size, usable);
}

void *zm_be_calloc(size_t size, size_t *usable) {
    /* Huge blocks are zeroed by zp_huge_alloc only when reused: a fresh
     * mapping is zero already. */
    if (size > ZP_MAX_CLASS_SIZE) {
        if (zp_tl_heap == &zp_empty_heap) { /* creates the heap, then huge */
            void *p = zp_malloc_generic(zp_tl_heap, size, usable);
            if (p) memset(p, 0, *usable);
            return p;
        }
        return zp_huge_alloc(size, 0, usable, 1);
    }
    void *p = zp_malloc_fast(size, usable);
    if (p) memset(p, 0, *usable);
    return p;
}

void *zm_be_realloc(void *ptr, size_t size, size_t *usable) {
    return zp_realloc(ptr, size, usable);
}

void *zm_be_aligned_alloc(size_t alignment, size_t size, size_t *usable) {
    if (alignment <= 16) return zp_malloc_fast(size, usable);
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

const char *zm_be_version(void) {
    return "pool";
}
