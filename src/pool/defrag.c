/* defrag.c: what the servers' active defragmenter asks of the pool.
 *
 * Redis and Valkey defragment by moving live blocks: for each pointer they
 * ask whether moving it would help (the hint), and if so allocate a new
 * block (zmalloc_no_tcache), copy, and free the old one. Only a page that
 * goes wholly empty gives memory back, so the hint must pick the pages to
 * empty and the allocation must fill other pages, never the one being
 * emptied. jemalloc's hint does this with slabs; this is the same idea for
 * the pool's pages, with its own policy:
 *
 * The hint (zm_be_defrag_hint) says "move" for a block when its page
 *   - belongs to the calling thread's heap: the page's occupancy (`used`)
 *     is written by its owner alone, so another thread cannot read it
 *     without a race; the owner field itself is an atomic, and it is the
 *     only page field read before that test. Blocks in other threads'
 *     pages are left alone (the servers defragment from the main thread,
 *     which allocates the keyspace);
 *   - is not the page allocations of its class currently come from
 *     (heap->direct), is not full, and some other page of the class has
 *     room to take the block;
 *   - and is sparse: under 1/8 used, or used no more than the average of
 *     the heap's non-full pages of the class (the current one left out)
 *     plus 12.5%. The margin keeps defrag from stalling when every page is
 *     equally used (then the moves themselves break the tie: the pages they
 *     fill rise above the average, the ones they drain fall below).
 * The average comes from a walk of the class's page queue, cached per
 * thread and class and redone after 16 hints per page walked plus 64, so
 * a walk of P pages costs at most 1/16 of a page visit per hint. The walk
 * also collects remote frees and returns pages it finds empty (other than
 * the current one) to their segment: they hold carved memory but nothing
 * to move.
 *
 * The allocation (zm_be_defrag_alloc) takes a block from a target page: the
 * fullest page with room among the 16 at each end of the class queue (find_page
 * sends nearly full pages to the back, the current one is at the front),
 * never the page the last hint chose to empty. The target is kept per class
 * until it fills up, so a move costs a few loads and one pop.
 *
 * The sweep (zp_defrag_sweep, run by zm_be_get_stats when asked to refresh,
 * as the servers do from their cron every 100 ms) gives back the calling
 * thread's pages whose blocks were all freed by other threads: those frees
 * wait on the page until its owner collects them, which find_page does only
 * for the pages it looks at, so after a lazy FLUSHALL (freed in a
 * background thread) pages of classes the server no longer allocates would
 * stay carved and count as fragmentation that no move can win. It visits
 * at most ZP_SWEEP_PAGES pages per call, resuming where it stopped.
 *
 * A heap keeps the current page of a class when it goes empty (the next
 * allocation would want one back); zp_defrag_front tells stats.c how many
 * carved bytes such pages of the calling thread hold, so that active leaves
 * them out, and how many free carved bytes all its current pages hold, so
 * that frag_smallbins leaves those out: the next allocations of the class
 * take them before any other page's, and the hint never moves a block out
 * of a current page, so no move can win them. They are the pool's
 * counterpart of the free regions jemalloc's thread cache holds, which its
 * frag_smallbins (slab regions minus curregs) does not count either.
 * Without this, a current page carved full by an earlier workload and left
 * nearly empty counted up to 64 KiB per class: Redis 7.4.1's pubsub defrag
 * test, run after its other defrag tests, stayed at 5.9% (over the 5%
 * threshold; isolated, 4%) and defrag never stopped. (Other threads' pages
 * are not read: their `used` is theirs.)
 *
 * State is per thread (the figures are of the thread's own heap): one
 * lazily mapped block, found through a TLS pointer. It is not returned when
 * the thread exits (only threads that defragment map one).
 */
#include <string.h>

#include "platform.h"
#include "pool.h"

/* Hints between two walks of a class's queue: per page walked, and fixed. */
#define ZP_DEFRAG_HINTS_PER_PAGE 16u
#define ZP_DEFRAG_HINTS_MIN 64u
/* Pages looked at from each end of a class queue for a target, and the
 * fullest pages with room a walk remembers as targets. */
#define ZP_DEFRAG_TARGET_SCAN 16u
#define ZP_DEFRAG_BEST 8u
/* Pages one sweep visits: about a microsecond's work per 20 pages. */
#define ZP_SWEEP_PAGES 1024u

typedef struct zp_defrag_class {
    uint64_t used_sum;  /* used blocks of the non-full pages walked       */
    uint32_t pages;     /* non-full pages walked (current page left out)  */
    uint32_t budget;    /* hints left before the next walk               */
    zp_page *target;    /* page defrag allocations of the class go to    */
    zp_page *best[ZP_DEFRAG_BEST]; /* fullest pages with room at the walk */
} zp_defrag_class;

typedef struct zp_defrag_state {
    zp_heap *heap;   /* the heap the figures describe                    */
    zp_page *hinted; /* the last page the hint chose to empty            */
    zp_page *sweep_page; /* where the sweep resumes (in queue sweep_cls) */
    unsigned sweep_cls;
    zp_defrag_class cls[ZP_NCLASSES];
} zp_defrag_state;

static __thread zp_defrag_state *defrag_state;

static ZP_COLD zp_defrag_state *state_create(zp_heap *heap) {
    zp_defrag_state *st = defrag_state;
    if (!st) {
        st = zm_os_map(sizeof *st);
        if (!st) return NULL;
        zp_stat_add(&zp_stat.mapped, sizeof *st);
        zp_stat_add(&zp_stat.committed, sizeof *st);
        defrag_state = st;
    }
    memset(st, 0, sizeof *st);
    st->heap = heap;
    return st;
}

/* The calling thread's state for heap, NULL when it cannot be had. */
static inline zp_defrag_state *state_of(zp_heap *heap) {
    zp_defrag_state *st = defrag_state;
    if (zp_likely(st && st->heap == heap)) return st;
    return state_create(heap);
}

static inline int page_has_room(const zp_page *page) {
    return page->free != NULL || page->cold != NULL || page->capacity < page->reserved;
}

/* page is in heap's queue of class cls (pointer may be stale: only the
 * atomic owner field is read before that is known). */
static inline int page_queued(zp_heap *heap, unsigned cls, const zp_page *page) {
    /* Owned and off the full list: the word is the heap exactly. */
    return page && atomic_load_explicit(&page->xheap, memory_order_relaxed) == (uintptr_t)heap &&
           page->state == ZP_PAGE_IN_USE && page->cls == cls;
}

/* Return page (queued in heap's class cls, not the current page) to its
 * segment when nothing in it is live. */
static void retire_if_empty(zp_heap *heap, zp_defrag_state *st, unsigned cls, zp_page *page) {
    zp_page_collect(page);
    if (page->used != 0) return;
    zp_pageq_remove(&heap->queues[cls], page);
    zp_defrag_class *dc = &st->cls[cls];
    if (dc->target == page) dc->target = NULL;
    zp_segment_page_free(heap, page);
}

/* Keep page among the ZP_DEFRAG_BEST fullest, fullest first. */
static void best_insert(zp_defrag_class *dc, zp_page *page) {
    unsigned i = ZP_DEFRAG_BEST;
    while (i > 0 && (!dc->best[i - 1] || dc->best[i - 1]->used < page->used)) i--;
    if (i == ZP_DEFRAG_BEST) return;
    memmove(&dc->best[i + 1], &dc->best[i], (ZP_DEFRAG_BEST - 1 - i) * sizeof dc->best[0]);
    dc->best[i] = page;
}

/* Walk the class queue: the average occupancy of its non-full pages, and
 * the fullest of them as targets. */
static ZP_COLD void class_walk(zp_heap *heap, zp_defrag_state *st, unsigned cls) {
    zp_defrag_class *dc = &st->cls[cls];
    zp_pageq *q = &heap->queues[cls];
    zp_page *current = heap->direct[cls], *page, *next;
    uint64_t sum = 0;
    uint32_t n = 0, walked = 0;
    memset(dc->best, 0, sizeof dc->best);
    for (page = q->first; page; page = next) {
        next = page->next;
        walked++;
        if (page == current) continue;
        /* Not the current page, hence not the first of the queue: direct[]
         * stays right when it goes. */
        retire_if_empty(heap, st, cls, page);
        if (page->state != ZP_PAGE_IN_USE || page->used >= page->reserved) continue;
        sum += page->used;
        n++;
        best_insert(dc, page);
    }
    dc->used_sum = sum;
    dc->pages = n;
    dc->budget = walked * ZP_DEFRAG_HINTS_PER_PAGE + ZP_DEFRAG_HINTS_MIN;
}

void zp_defrag_sweep(zp_heap *heap) {
    if (heap == &zp_empty_heap) return;
    zp_defrag_state *st = state_of(heap);
    if (!st) return;
    /* Frees into full pages come through the heap's delayed list: they put
     * the pages back in their queues, where the walk below finds them. */
    zp_heap_drain_delayed(heap);
    unsigned cls = st->sweep_cls, classes = 0, visited = 0;
    zp_page *page = st->sweep_page;
    if (!page_queued(heap, cls, page)) page = heap->queues[cls].first;
    while (visited < ZP_SWEEP_PAGES) {
        if (!page) {
            if (++classes > ZP_NCLASSES) break; /* the whole heap */
            cls = (cls + 1) % ZP_NCLASSES;
            page = heap->queues[cls].first;
            continue;
        }
        zp_page *next = page->next;
        visited++;
        if (page != heap->direct[cls]) retire_if_empty(heap, st, cls, page);
        page = next;
    }
    st->sweep_cls = cls;
    st->sweep_page = page;
}

zp_front zp_defrag_front(zp_heap *heap) {
    zp_front f = {0, 0};
    if (heap == &zp_empty_heap) return f;
    for (unsigned c = 0; c < ZP_NCLASSES; c++) {
        const zp_page *page = heap->direct[c];
        size_t free_carved = (size_t)(page->capacity - page->used) * page->block_size;
        f.free_carved += free_carved;
        if (page->used == 0) f.idle_carved += free_carved;
    }
    return f;
}

int zm_be_defrag_hint(const void *p) {
    zp_segment *seg = zp_segment_of(p);
    /* kind and page_shift do not change while a block of the segment is
     * live, so any thread holding the block may read them. */
    if (seg->kind == ZP_KIND_HUGE) return 0;
    zp_page *page = zp_page_of(seg, p);
    zp_heap *heap = zp_tl_heap;
    if (zp_page_owner(page, memory_order_relaxed) != heap) return 0;
    /* From here on the page is ours: its owner fields are ours to read. */
    unsigned cls = page->cls;
    zp_page *current = heap->direct[cls];
    uint32_t used = page->used, reserved = page->reserved;
    if (page == current || used >= reserved || zp_page_in_full(page)) return 0;
    zp_defrag_state *st = state_of(heap);
    if (zp_unlikely(!st)) return 0;
    zp_defrag_class *dc = &st->cls[cls];
    if (zp_unlikely(dc->budget == 0)) {
        class_walk(heap, st, cls);
        if (page->state != ZP_PAGE_IN_USE) return 0; /* the walk emptied it */
        used = page->used;
    }
    dc->budget--;
    /* Somewhere else to go: the current page, or another non-full one. */
    if (!page_has_room(current) && dc->pages < 2) return 0;
    uint64_t sum = dc->used_sum;
    int move = (uint64_t)used * 8 < reserved ||
               (dc->pages && (uint64_t)used * dc->pages <= sum + sum / 8);
    if (move) st->hinted = page;
    return move;
}

/* A page of heap's class cls that a defrag allocation may fill. */
static inline int target_ok(zp_heap *heap, unsigned cls, const zp_page *page,
                            const zp_page *avoid) {
    return page != avoid && page_queued(heap, cls, page) &&
           (page_has_room(page) || (zp_page_collect((zp_page *)page), page->free != NULL));
}

/* The fullest page with room among the walk's best and both ends of the
 * queue. One under 1/8 used is itself a page to empty: then the current
 * page (which fills anyway) if it has room. */
static ZP_COLD zp_page *target_pick(zp_heap *heap, unsigned cls, zp_defrag_class *dc,
                                    const zp_page *avoid) {
    zp_pageq *q = &heap->queues[cls];
    zp_page *best = NULL, *page;
    unsigned i;
    for (i = 0; i < ZP_DEFRAG_BEST; i++) {
        page = dc->best[i];
        if (!page) continue;
        if (!target_ok(heap, cls, page, avoid)) {
            dc->best[i] = NULL; /* full now, or gone */
            continue;
        }
        if (!best || page->used > best->used) best = page;
    }
    for (page = q->last, i = 0; page && i < ZP_DEFRAG_TARGET_SCAN; page = page->prev, i++)
        if (target_ok(heap, cls, page, avoid) && (!best || page->used > best->used)) best = page;
    for (page = q->first, i = 0; page && i < ZP_DEFRAG_TARGET_SCAN; page = page->next, i++)
        if (target_ok(heap, cls, page, avoid) && (!best || page->used > best->used)) best = page;
    zp_page *current = heap->direct[cls];
    if ((!best || (uint64_t)best->used * 8 < best->reserved) &&
        target_ok(heap, cls, current, avoid))
        best = current;
    return best;
}

void *zm_be_defrag_alloc(size_t size, size_t *usable) {
    zp_heap *heap = zp_tl_heap;
    if (size == 0 || size > ZP_MAX_CLASS_SIZE || heap == &zp_empty_heap) return NULL;
    zp_defrag_state *st = state_of(heap);
    if (!st) return NULL;
    unsigned cls = zp_class_of(size);
    zp_defrag_class *dc = &st->cls[cls];
    zp_page *page = dc->target;
    if (!target_ok(heap, cls, page, st->hinted)) {
        page = target_pick(heap, cls, dc, st->hinted);
        dc->target = page;
        if (!page) return NULL;
    }
    if (!page->free) zp_page_refill(page);
    zp_block *b = page->free;
    page->free = b->next;
    page->used++;
    zp_count(&heap->live[cls], 1);
    *usable = page->block_size;
    return b;
}
