/* defrag.c: the public face of active defragmentation, over the backend.
 *
 * Redis and Valkey move a block when the allocator's hint says it helps:
 * zmalloc_no_tcache(), copy, zfree_no_tcache(). Both are accounted like
 * zmalloc()/zfree() (on the pool its per-class count is the total, kept by
 * zm_be_defrag_alloc as by any allocation), so used memory stays exact
 * through a move (Redis's own zmalloc does the same). The policy (which blocks, which pages to fill)
 * is the backend's: src/pool/defrag.c. The jemalloc backend's
 * zmalloc_no_tcache() lives with its other flag calls in zmalloc.c.
 *
 * Lingering frees (pool). Redis 7.4's and Valkey 8.0's pubsub defrag reads
 * the channel object it has just moved and freed: after activeDefragStringObEx
 * it looks the new channel up in each subscriber's dict, whose key is still
 * the old pointer, and the key compare decodes the freed object (fixed
 * upstream later: redis/redis#14330; Valkey frees the old channel only after
 * the lookups since 8.1). jemalloc leaves a freed small block's bytes alone,
 * so the servers never noticed; the pool writes its free-list link into the
 * block's first word, and Redis 7.4.1 died in its own "Active defrag pubsub"
 * test ("Unknown encoding type", defragPubsubScanCallback -> dictFind), seen
 * 2026-12-04. So zfree_no_tcache does not free at once: the last
 * ZM_DEFRAG_LINGER blocks it was given wait, intact, in a per-thread ring,
 * and each new one frees the oldest. The ring is emptied by the thread's
 * next refreshing zmalloc_get_allocator_info* call (the servers make one
 * from their cron, between defrag callbacks), by zmalloc_purge(), and at
 * thread exit. Until then a waiting block still counts as used memory (at
 * most ZM_DEFRAG_LINGER blocks per defragmenting thread): the count drops
 * when the block is really freed, so it stays exact about what is held.
 */
#include "zmalloc.h"

#include "account.h"
#include "defrag.h"
#include "layer.h"
#include "lifecycle.h"

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

#define ZM_DEFRAG_LINGER 8
static __thread void *lingering[ZM_DEFRAG_LINGER];
static __thread unsigned lingering_next;
/* 1: this thread's exit hook will empty the ring; -1: it cannot (no
 * pthread key), so nothing lingers; 0: not asked yet. */
static __thread int lingering_hooked;

void zfree_no_tcache(void *ptr) {
    if (!ptr) return;
    if (__builtin_expect(lingering_hooked == 0, 0))
        lingering_hooked = zm_lifecycle_thread_attach() == 0 ? 1 : -1;
    if (lingering_hooked < 0) {
        zfree(ptr);
        return;
    }
    void *oldest = lingering[lingering_next];
    lingering[lingering_next] = ptr;
    lingering_next = (lingering_next + 1) % ZM_DEFRAG_LINGER;
    if (oldest) zfree(oldest);
}

void zm_defrag_release_lingering(void) {
    for (unsigned i = 0; i < ZM_DEFRAG_LINGER; i++) {
        void *p = lingering[i];
        lingering[i] = NULL;
        if (p) zfree(p);
    }
    lingering_next = 0;
}

void zm_defrag_thread_exit(void) {
    zm_defrag_release_lingering();
}

#else

void zm_defrag_release_lingering(void) {}
void zm_defrag_thread_exit(void) {}

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
