/* allocator_defrag.c: zmalloc's replacement for Valkey 8.1+'s
 * src/allocator_defrag.c, which asks jemalloc's mallctl for slab figures.
 * Here every answer comes from zmalloc (include/zmalloc.h):
 *
 *   allocatorShouldDefrag         zmalloc_defrag_hint (the pool's per-page
 *                                 policy, src/pool/defrag.c)
 *   allocatorDefragAlloc/Free     zmalloc_no_tcache / zfree_no_tcache: both
 *                                 sides accounted in used_memory, so a move
 *                                 leaves it unchanged (jemalloc's version
 *                                 accounts neither side; either keeps it
 *                                 exact, as defrag.c frees every moved block
 *                                 with allocatorDefragFree)
 *   allocatorDefragGetFragSmallbins  frag_smallbins of
 *                                 zmalloc_get_allocator_info_full: free
 *                                 bytes in partly used class pages
 *   getAllocatorFragmentation     that over allocated, as Valkey computes it
 *
 * Built without HAVE_DEFRAG (a backend without a hint) the functions answer
 * "no defrag", as Valkey's own fallback does.
 */
#include "server.h"
#include "allocator_defrag.h"

#ifdef HAVE_DEFRAG

int allocatorDefragInit(void) {
    return 0;
}

void *allocatorDefragAlloc(size_t size) {
    return zmalloc_no_tcache(size);
}

/* size is what defrag.c read with zmalloc_size(): the pool knows it. */
void allocatorDefragFree(void *ptr, size_t size) {
    UNUSED(size);
    zfree_no_tcache(ptr);
}

int allocatorShouldDefrag(void *ptr) {
    return zmalloc_defrag_hint(ptr);
}

unsigned long allocatorDefragGetFragSmallbins(void) {
    size_t frag = 0;
    zmalloc_get_allocator_info_full(1, NULL, NULL, NULL, NULL, NULL, &frag);
    return frag;
}

float getAllocatorFragmentation(size_t *out_frag_bytes) {
    size_t allocated = 0, active = 0, resident = 0, frag = 0;
    zmalloc_get_allocator_info_full(1, &allocated, &active, &resident, NULL, NULL, &frag);
    if (allocated == 0) allocated = 1;
    /* Free small-page bytes (what defrag can win) over all allocated bytes,
     * huge blocks included, as Valkey's jemalloc version does. */
    float frag_pct = (float)frag / allocated * 100;
    float rss_pct = ((float)resident / allocated) * 100 - 100;
    size_t rss_bytes = resident > allocated ? resident - allocated : 0;
    if (out_frag_bytes) *out_frag_bytes = frag;
    serverLog(LL_DEBUG,
              "allocated=%zu, active=%zu, resident=%zu, frag=%.2f%% (%.2f%% rss), "
              "frag_bytes=%zu (%zu rss)",
              allocated, active, resident, frag_pct, rss_pct, frag, rss_bytes);
    return frag_pct;
}

#else

int allocatorDefragInit(void) {
    return -1;
}

void *allocatorDefragAlloc(size_t size) {
    UNUSED(size);
    return NULL;
}

void allocatorDefragFree(void *ptr, size_t size) {
    UNUSED(ptr);
    UNUSED(size);
}

int allocatorShouldDefrag(void *ptr) {
    UNUSED(ptr);
    return 0;
}

/* The figure INFO shows as allocator_frag_bytes: still honest without a
 * defragmenter. */
unsigned long allocatorDefragGetFragSmallbins(void) {
    size_t frag = 0;
    zmalloc_get_allocator_info_full(1, NULL, NULL, NULL, NULL, NULL, &frag);
    return frag;
}

float getAllocatorFragmentation(size_t *out_frag_bytes) {
    UNUSED(out_frag_bytes);
    return 0;
}

#endif
