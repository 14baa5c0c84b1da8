/* defrag.c: the public face of active defragmentation, over the backend.
 *
 * Redis and Valkey move a block when the allocator's hint says it helps:
 * zmalloc_no_tcache(), copy, zfree_no_tcache(). Both are accounted like
 * zmalloc()/zfree() (on the pool its per-class count is the total, kept by
 * zm_be_defrag_alloc as by any allocation), so used memory stays exact
 * through a move (Redis's own zmalloc does the same). The policy (which blocks, which pages to fill)
 * is the backend's: src/pool/defrag.c. The jemalloc backend's
 * zmalloc_no_tcache() lives with its other flag calls in zmalloc.c.
 */
#include "zmalloc.h"

#include "account.h"
#include "layer.h"

#if ZMALLOC_BACKEND_POOL && !ZMALLOC_DEBUG_BUILD

int zmalloc_defrag_hint(void *ptr) {
    return ptr ? zm_be_defrag_hint(ptr) : 0;
}

int je_get_defrag_hint(void *ptr) {
    return zmalloc_defrag_hint(ptr);
}

/* The move is neutral for the limit (the old block goes right after), but
 * the new block exists first: with a limit set, zmalloc() decides. */
void *zmalloc_no_tcache(size_t size) {
    size_t usable;
    void *p = zmalloc_get_memory_limit() ? NULL : zm_be_defrag_alloc(size, &usable);
    if (!p) return zmalloc(size);
#if !ZM_LAYER_COUNTS
    zm_account_add((long long)usable); /* the pool's own count has it otherwise */
#endif
    return p;
}

void zfree_no_tcache(void *ptr) {
    zfree(ptr);
}

#else

int zmalloc_defrag_hint(void *ptr) {
    (void)ptr;
    return 0;
}

#if ZMALLOC_BACKEND_POOL
/* Verification build: blocks go through the verification layer. */
void *zmalloc_no_tcache(size_t size) {
    return zmalloc(size);
}

void zfree_no_tcache(void *ptr) {
    zfree(ptr);
}
#endif

#endif
