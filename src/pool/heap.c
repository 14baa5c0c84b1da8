/* heap.c: thread heaps, their slow paths, thread start and exit, fork.
 *
 * Each thread allocates from its own heap, reached through one
 * initial-exec TLS pointer. Before its first allocation a thread points at
 * the static empty heap, whose queues are all an empty page: the fast path
 * fails over to zp_malloc_generic(), which creates the heap. That keeps the
 * fast path free of an "initialised?" test and makes the allocator usable
 * before main and from constructors (nothing depends on init order).
 *
 * Heaps are carved from mmap'd metadata chunks and recycled, never unmapped:
 * a remote freer may read a page's stale owner pointer, and it must point at
 * readable memory. At thread exit (zp_heap_thread_exit(), which
 * lifecycle.c calls, with the fork hooks below, in layer order: this file
 * registers no pthread key and no atfork handler itself) the heap is
 * parked whole, pages, queues and dirty list included, for the next thread
 * that starts: a thread pool or a server that starts a thread per client
 * then pays no syscall and no page fault per thread, and the blocks an
 * exited thread handed to others come back to its successor as remote
 * frees. Only a thread that allocates takes a parked heap: a thread whose
 * first call is a free (a consumer, or a main thread freeing what its
 * workers handed over) gets a fresh heap for its remote-free batches, or
 * it would sit on the parked pages it never allocates from while the next
 * worker carves new ones (thread-churn through the zmalloc API: 12.2 MiB
 * peak against 7.9 MiB under the preload library, whose main thread has a
 * heap from its first malloc). A heap that owns no segment is not parked
 * when its thread exits: the next thread would take it (newest first) and
 * carve afresh while a heap with pages waited. At most heap_park_max heaps wait, each for at most dirty_age_ms
 * (the purge timer of running heaps and zm_be_purge abandon them then);
 * beyond that a heap is abandoned at once: its segments still in use go on
 * the abandoned list for other heaps to adopt. Global state (heap
 * registry, parked heaps, metadata) sits behind one spin lock, which the
 * fork hooks take so the child inherits consistent lists.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stddef.h>
#include <string.h>

#include "lifecycle.h"
#include "platform.h"
#include "pool.h"

/* The empty page: never has a free block, never owned. */
static zp_page zp_empty_page;

zp_heap zp_empty_heap = {.direct_small = {[0 ... ZP_DIRECT_SLOTS - 1] = &zp_empty_page},
                         .direct = {[0 ... ZP_NCLASSES - 1] = &zp_empty_page}};
__thread zp_heap *zp_tl_heap __attribute__((tls_model("initial-exec"))) = &zp_empty_heap;

zp_counters zp_stat;

static zp_lock global_lock;
static zp_heap *heap_registry;   /* live and orphaned heaps */
static zp_heap *heap_free_list;  /* recycled heap structs */
static zp_heap *heap_parked;     /* exited threads' heaps, newest first */
static size_t parked_count;
static _Atomic size_t parked_hint; /* parked_count, readable without the lock */
static char *meta_cursor, *meta_end, *meta_touched;

void zp_lock_acquire(zp_lock *l) {
    while (atomic_flag_test_and_set_explicit(&l->flag, memory_order_acquire)) sched_yield();
}

static zp_heap *_Atomic all_heaps; /* zp_heap.next_all */

static void heap_reset(zp_heap *heap) {
    /* Everything but next_all, which lock-free readers (zp_used_bytes) may
     * be following right now: not even rewritten with its own value. */
    size_t at = offsetof(zp_heap, next_all), after = at + sizeof heap->next_all;
    memset(heap, 0, at);
    memset((char *)heap + after, 0, sizeof *heap - after);
    for (unsigned c = 0; c < ZP_NCLASSES; c++) zp_heap_set_direct(heap, c, &zp_empty_page);
    heap->direct_small[0] = &zp_empty_page; /* for good: pool.h */
    heap->last_purge_ms = zm_os_clock_ms();
}

/* Under global_lock. */
static zp_heap *heap_struct_alloc(void) {
    zp_heap *heap = heap_free_list;
    if (heap) {
        heap_free_list = heap->next_heap;
        return heap;
    }
    size_t need = (sizeof(zp_heap) + 63) & ~(size_t)63;
    if (meta_cursor == NULL || (size_t)(meta_end - meta_cursor) < need) {
        size_t chunk = (size_t)256 << 10;
        char *m = zm_os_map(chunk);
        if (!m) return NULL;
        zp_stat_add(&zp_stat.mapped, chunk);
        meta_cursor = meta_touched = m;
        meta_end = m + chunk;
    }
    heap = (zp_heap *)meta_cursor;
    meta_cursor += need;
    heap->next_all = atomic_load_explicit(&all_heaps, memory_order_relaxed);
    atomic_store_explicit(&all_heaps, heap, memory_order_release);
    /* committed grows by the ZP_TOUCH_SIZE steps the heap structs reach. */
    if (meta_cursor > meta_touched) {
        uintptr_t step = ZP_TOUCH_SIZE;
        char *t = (char *)(((uintptr_t)meta_cursor + step - 1) & ~(step - 1));
        zp_stat_add(&zp_stat.committed, (size_t)(t - meta_touched));
        meta_touched = t;
    }
    return heap;
}

/* The policy values are read once, when the first heap is made; threads
 * racing the first wait until they are in place. */
static void policy_once(void) {
    static _Atomic int state; /* 0 unread, 1 reading, 2 read */
    int expected = 0;
    if (atomic_load_explicit(&state, memory_order_acquire) == 2) return;
    if (atomic_compare_exchange_strong(&state, &expected, 1)) {
        zp_policy_init();
        atomic_store_explicit(&state, 2, memory_order_release);
        return;
    }
    while (atomic_load_explicit(&state, memory_order_acquire) != 2) sched_yield();
}

static void heap_sweep(zp_heap *heap, int all, int retire);

/* Under global_lock: the newest parked heap (its memory is the most likely
 * cached), off the parking lot; NULL when none waits. */
static zp_heap *parked_pop(void) {
    zp_heap *heap = heap_parked;
    if (heap) {
        heap_parked = heap->next_parked;
        parked_count--;
        atomic_store_explicit(&parked_hint, parked_count, memory_order_relaxed);
        heap->next_parked = NULL;
    }
    return heap;
}

/* The calling thread's heap, made now: a parked one when may_adopt (the
 * thread is about to allocate), else a fresh one. */
static ZP_COLD zp_heap *heap_init_thread(int may_adopt) {
    policy_once();
    zp_lock_acquire(&global_lock);
    /* platform.c caches the page size in a plain variable: its first write
     * happens here, under the lock every thread takes before it maps. */
    (void)zm_os_page_size();
    zp_heap *heap = may_adopt ? parked_pop() : NULL;
    if (!heap) {
        heap = heap_struct_alloc();
        if (heap) {
            heap_reset(heap);
            heap->next_heap = heap_registry;
            if (heap_registry) heap_registry->prev_heap = heap;
            heap_registry = heap;
        }
    }
    zp_lock_release(&global_lock);
    if (!heap) return NULL;
    /* A parked heap kept receiving remote frees while it waited (blocks
     * its thread handed out): collect them onto the local lists, so the
     * new thread reuses them rather than carving more (parked heaps held
     * 86 of the 179 MiB at a short soak's peak, 14 MiB of it live). A fresh
     * heap has no pages: nothing to do. */
    heap_sweep(heap, 1, 0);
    zp_tl_heap = heap;
    /* After zp_tl_heap is set: the first attach registers the fork hooks,
     * and an allocation made by pthread_atfork itself then takes the
     * ordinary path. Without an exit hook (attach failed) the heap is kept
     * by its dead thread: its pages stay owned, remote frees still land. */
    (void)zm_lifecycle_thread_attach();
    return heap;
}

size_t zp_used_bytes(void) {
    long live[ZP_NCLASSES];
    for (unsigned c = 0; c < ZP_NCLASSES; c++)
        live[c] = atomic_load_explicit(&zp_stat.class_live_dead[c], memory_order_relaxed) +
                  atomic_load_explicit(&zp_stat.remote_live[c], memory_order_relaxed);
    /* Recycled heaps were folded into class_live_dead and count 0. */
    for (zp_heap *h = atomic_load_explicit(&all_heaps, memory_order_acquire); h; h = h->next_all)
        for (unsigned c = 0; c < ZP_NCLASSES; c++)
            live[c] += atomic_load_explicit(&h->live[c], memory_order_relaxed);
    size_t sum = atomic_load_explicit(&zp_stat.huge_live, memory_order_relaxed);
    for (unsigned c = 0; c < ZP_NCLASSES; c++) sum += (size_t)live[c] * zp_class_size(c);
    return sum;
}

void zp_heap_registry_each(void (*fn)(zp_heap *, void *), void *arg) {
    zp_lock_acquire(&global_lock);
    for (zp_heap *h = heap_registry; h; h = h->next_heap) fn(h, arg);
    zp_lock_release(&global_lock);
}

static inline void queue_fix(zp_heap *heap, unsigned cls) {
    zp_page *first = heap->queues[cls].first;
    zp_heap_set_direct(heap, cls, first ? first : &zp_empty_page);
}

/* ---- moving pages between the class queues and the full list ------------- */

/* Set NOTIFY so the next remote free tells us. Fails (0) when remote frees
 * are already pending: the page is not full after all. */
static int page_to_full(zp_heap *heap, zp_page *page) {
    uintptr_t tf = atomic_load_explicit(&page->xthread_free, memory_order_relaxed);
    for (;;) {
        if (tf & ~(uintptr_t)ZP_TF_MASK) return 0;
        if ((tf & ZP_TF_MASK) == ZP_TF_NOTIFYING) { /* a late notifier from before */
            sched_yield();
            tf = atomic_load_explicit(&page->xthread_free, memory_order_relaxed);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&page->xthread_free, &tf, ZP_TF_NOTIFY,
                                                  memory_order_acq_rel, memory_order_relaxed))
            break;
    }
    zp_pageq_remove(&heap->queues[page->cls], page);
    queue_fix(heap, page->cls);
    zp_pageq_push_back(&heap->full, page);
    zp_page_set_owner(page, heap, 1);
    return 1;
}

/* Stop notifications: NOTIFY -> NONE. A freer in NOTIFYING finishes by
 * itself; with wait set we wait for it (abandon must). */
static void page_stop_notify(zp_page *page, int wait) {
    uintptr_t tf = atomic_load_explicit(&page->xthread_free, memory_order_relaxed);
    for (;;) {
        uintptr_t st = tf & ZP_TF_MASK;
        if (st == ZP_TF_NONE) return;
        if (st == ZP_TF_NOTIFYING) {
            if (!wait) return;
            sched_yield();
            tf = atomic_load_explicit(&page->xthread_free, memory_order_acquire);
            continue;
        }
        if (atomic_compare_exchange_weak_explicit(&page->xthread_free, &tf,
                                                  tf & ~(uintptr_t)ZP_TF_MASK,
                                                  memory_order_acq_rel, memory_order_relaxed))
            return;
    }
}

static void page_unfull(zp_heap *heap, zp_page *page) {
    zp_pageq_remove(&heap->full, page);
    zp_page_set_owner(page, heap, 0);
    zp_pageq_push_back(&heap->queues[page->cls], page);
    queue_fix(heap, page->cls);
    page_stop_notify(page, 0);
}

/* Empty page: keep it when it is the only one of its class (the next
 * allocation would want a page right back), else give it to the segment. */
void zp_heap_page_retire(zp_heap *heap, zp_page *page) {
    zp_pageq *q = &heap->queues[page->cls];
    if (q->first == page && page->next == NULL) return;
    zp_pageq_remove(q, page);
    queue_fix(heap, page->cls);
    zp_segment_page_free(heap, page);
}

/* Free by the owner on a slow path (page in the full list, or a delayed
 * block). Does not touch the live counters. */
void zp_local_free(zp_heap *heap, zp_page *page, zp_block *b) {
    if (zp_page_in_full(page)) page_unfull(heap, page);
    b->next = page->free;
    page->free = b;
    if (--page->used == 0) zp_heap_page_retire(heap, page);
}

static void drain_delayed(zp_heap *heap) {
    zp_block *b = atomic_exchange_explicit(&heap->xdelayed, NULL, memory_order_acquire);
    while (b) {
        zp_block *next = b->next;
        zp_local_free(heap, zp_page_of(zp_segment_of(b), b), b);
        b = next;
    }
}

/* For defrag.c's sweep. */
void zp_heap_drain_delayed(zp_heap *heap) {
    if (atomic_load_explicit(&heap->xdelayed, memory_order_relaxed)) drain_delayed(heap);
}

/* ---- allocation slow path --------------------------------------------------- */

/* Malloc slow paths between two looks at the purge timer's clock. */
#define ZP_TICK_CALLS 64u

/* Pages looked at per search: bounds the slow path. */
#define ZP_CANDIDATES 8

/* The next page to allocate from. Among the first few pages of the queue
 * with at least 1/8 of their blocks free, the fullest wins: allocation
 * concentrates on dense pages and sparse ones drain until they go empty and
 * return to the segment. A page with free blocks already carved wins over
 * one that would have to carve more: carving touches memory, and with
 * fullest-first alone the current page (the fullest) carved on to its end
 * while the pages behind it held free blocks, so every page of a class
 * grew to its whole reserve (small pages of the soak: 66 MiB touched for
 * 19 MiB live). Pages with less than 1/8 free move to the back so they
 * gather more frees before they are looked at again; pages with none go
 * to the full list. */
static zp_page *find_page(zp_heap *heap, unsigned cls) {
    zp_pageq *q = &heap->queues[cls];
    zp_page *page, *next, *best = NULL, *carve = NULL, *fallback = NULL;
    unsigned seen = 0;
    for (page = q->first; page && seen < ZP_CANDIDATES; page = next) {
        next = page->next;
        if (!page->free) zp_page_collect(page);
        if (!page->free && !page->cold && page->capacity == page->reserved) {
            if (page_to_full(heap, page)) continue;
            zp_page_collect(page); /* a remote free raced in */
            if (!page->free) continue;
        }
        seen++;
        uint32_t avail = page->reserved - page->used;
        if (avail * 8 < page->reserved) {
            if (!fallback || avail > fallback->reserved - fallback->used) fallback = page;
            if (page != q->last) {
                zp_pageq_remove(q, page);
                zp_pageq_push_back(q, page);
            }
            continue;
        }
        if (page->free || page->cold) {
            if (!best || page->used > best->used) best = page;
        } else if (!carve || page->used > carve->used) {
            carve = page;
        }
    }
    if (!best) best = carve;
    if (!best) best = fallback;
    if (best) {
        if (!best->free) zp_page_refill(best);
        if (best != q->first) {
            zp_pageq_remove(q, best);
            zp_pageq_push_front(q, best);
        }
        queue_fix(heap, cls);
        return best;
    }
    page = zp_segment_page_alloc(heap, zp_kind_of_size(zp_class_size(cls)));
    if (!page) return NULL;
    zp_page_init(heap, zp_segment_of(page), page, cls);
    atomic_fetch_add_explicit(&zp_stat.class_pages[cls], 1, memory_order_relaxed);
    zp_pageq_push_front(q, page);
    queue_fix(heap, cls);
    zp_page_extend(page);
    return page;
}

/* ---- the timer's sweep ------------------------------------------------------
 * A page whose blocks were all freed by other threads stays in its queue,
 * holding every 4 KiB it touched, until its owner happens to look at it:
 * find_page collects only the first few pages of a queue, only when the
 * current page runs dry, and the only page of a class is kept when it goes
 * empty. Where most frees are remote (worker pools, the soak: 8 threads on
 * shared slots), such pages were a third of the RSS (70 of 219 MiB at the
 * peak of a short soak, pages of classes the owner rarely allocates). The
 * purge timer (zp_heap_purge_tick, at most every purge_interval_ms) sweeps
 * the queues: it collects the remote frees of a page only when they are all
 * its blocks (the count in xthread_free says so without a walk; once every
 * block is free no further free can come), and retires the empty pages,
 * the current one of its class too: a class then pays one page swap per
 * timer period at most. At most ZP_SWEEP_PAGES pages a tick (whole classes,
 * resuming at the next class). */
#define ZP_SWEEP_PAGES 4096u
/* Free bytes of a page the sweep leaves warm (zp_page_cool, page.c). */
#define ZP_HOT_BYTES ((size_t)64 << 10)

static void heap_sweep(zp_heap *heap, int all, int retire) {
    unsigned visited = 0;
    for (unsigned n = 0; n < ZP_NCLASSES && (all || visited < ZP_SWEEP_PAGES); n++) {
        unsigned c = heap->sweep_cls;
        heap->sweep_cls = (c + 1) % ZP_NCLASSES;
        zp_page *page, *next;
        int changed = 0;
        int cool = zp_class_size(c) >= 2 * zm_os_page_size();
        for (page = heap->queues[c].first; page; page = next) {
            next = page->next;
            visited++;
            if (!retire) {
                /* A parked heap taken by a new thread: its remote frees
                 * back on the local lists (no walk), its pages kept, so the
                 * thread reuses them with no syscall and no page fault
                 * (retiring them here cost thread-churn a madvise and the
                 * faults back per thread). */
                if (!page->free) zp_page_collect(page);
                continue;
            }
            if (!zp_page_collect_if_empty(page)) {
                uintptr_t tf = atomic_load_explicit(&page->xthread_free, memory_order_relaxed);
                /* No walk when the local list is empty. Medium and large
                 * pages hold few blocks: walking their remote chain costs
                 * little, and their free blocks are what cooling gives back.
                 * Others are walked by the timer when the remote chain holds
                 * at least half the blocks out (free memory the owner
                 * cannot reach), never at park or unpark (thread churn). */
                if (!page->free || cool || (!all && (tf >> ZP_TF_PTR_BITS) * 2 >= page->used))
                    zp_page_collect(page);
                if (page->used != 0) {
                    if (cool) zp_page_cool(page, ZP_HOT_BYTES);
                    continue;
                }
            }
            zp_pageq_remove(&heap->queues[c], page);
            zp_segment_page_free(heap, page);
            changed = 1;
        }
        if (changed) queue_fix(heap, c);
    }
}

void zp_heap_sweep(zp_heap *heap) {
    heap_sweep(heap, 0, 1);
}

static void heap_purge(zp_heap *heap);
static int heap_owns_segments(const zp_heap *heap);
static zp_heap *heap_trade_for_parked(zp_heap *fresh);

void *zp_malloc_generic(zp_heap *heap, size_t size, size_t *usable) {
    if (zp_unlikely(heap == &zp_empty_heap)) {
        heap = heap_init_thread(1);
        if (!heap) {
            errno = ENOMEM;
            return NULL;
        }
    } else if (zp_unlikely(atomic_load_explicit(&parked_hint, memory_order_relaxed) != 0) &&
               !heap_owns_segments(heap)) {
        /* A heap that has no page yet (its thread began with a free) while
         * an exited thread's heap waits with pages: take that one. */
        heap = heap_trade_for_parked(heap);
    }
    zp_rbatch_flush_if(heap);
    if (size > ZP_MAX_CLASS_SIZE) return zp_huge_alloc(size, 0, usable, 0);
    if (atomic_load_explicit(&heap->xdelayed, memory_order_relaxed)) drain_delayed(heap);
    if (zp_unlikely(atomic_load_explicit(&heap->purge_request, memory_order_relaxed))) {
        atomic_store_explicit(&heap->purge_request, 0, memory_order_relaxed);
        heap_purge(heap);
    }
    /* The timer looks at the clock every ZP_TICK_CALLS slow paths (a heap
     * that keeps allocating from pages it has never needs a new page, the
     * other place the timer runs). */
    if (zp_unlikely(++heap->tick_calls >= ZP_TICK_CALLS)) {
        heap->tick_calls = 0;
        zp_heap_purge_tick(heap);
    }
    unsigned cls = zp_class_of(size);
    zp_page *page = heap->direct[cls];
    if (!page->free) page = find_page(heap, cls);
    ZP_CHECK_SLOW_PATH(heap, page);
    if (!page) {
        errno = ENOMEM;
        return NULL;
    }
    zp_block *b = page->free;
    page->free = b->next;
    page->used++;
    zp_count(&heap->live[cls], 1);
    *usable = page->block_size;
    return b;
}

/* ---- free slow path ------------------------------------------------------------ */

void zp_free_generic(zp_segment *seg, zp_page *page, void *p) {
    if (seg->kind == ZP_KIND_HUGE) {
        zp_huge_free(seg);
        return;
    }
    zp_heap *heap = zp_tl_heap;
    unsigned cls = page->rcls;
    /* A thread that only frees (a consumer) gets a heap too: its remote
     * frees are batched there. A fresh one: see the note at the top. */
    if (zp_unlikely(heap == &zp_empty_heap)) {
        zp_heap *h = heap_init_thread(0);
        if (h) heap = h;
    }
    if (zp_page_owner(page, memory_order_relaxed) == heap) {
        zp_count(&heap->live[cls], -1);
        zp_local_free(heap, page, (zp_block *)p);
        return;
    }
    if (heap != &zp_empty_heap) {
        zp_count(&heap->live[cls], -1);
        if (page->rblock_size <= ZP_SMALL_MAX) {
            zp_rbatch_add(heap, page, (zp_block *)p);
            return;
        }
    } else {
        atomic_fetch_sub_explicit(&zp_stat.remote_live[cls], 1, memory_order_relaxed);
    }
    zp_free_remote(page, (zp_block *)p, (zp_block *)p, 1);
}

/* ---- aligned, realloc ------------------------------------------------------------ */

void *zp_aligned_alloc(size_t alignment, size_t size, size_t *usable) {
    /* Class blocks of a multiple of the alignment sit at multiples of it
     * (page areas are ZP_HDR_SIZE-aligned, and the class of a multiple of a
     * power of two is a multiple of it), so rounding the size up suffices. */
    if (alignment <= ZP_HDR_SIZE) {
        size_t rounded = (size + alignment - 1) & ~(alignment - 1);
        if (rounded <= ZP_MAX_CLASS_SIZE) return zp_malloc_fast(rounded ? rounded : alignment, usable);
    }
    if (zp_tl_heap == &zp_empty_heap && !heap_init_thread(1)) {
        errno = ENOMEM;
        return NULL;
    }
    return zp_huge_alloc(size, alignment, usable, 0);
}

void *zp_calloc(size_t size, size_t *usable) {
    if (size > ZP_MAX_CLASS_SIZE) {
        if (zp_tl_heap == &zp_empty_heap && !heap_init_thread(1)) {
            errno = ENOMEM;
            return NULL;
        }
        return zp_huge_alloc(size, 0, usable, 1);
    }
    void *p = zp_malloc_fast(size, usable);
    if (p) memset(p, 0, *usable);
    return p;
}

void *zp_realloc(void *p, size_t size, size_t *usable) {
    zp_segment *seg = zp_segment_of(p);
    size_t old = zp_usable_size(p);
    if (size <= old) {
        /* Keep the block when the request still maps to it: same class, or a
         * huge block shrinking by less than half. */
        if (seg->kind == ZP_KIND_HUGE ? size > old / 2
                                       : zp_class_size(zp_class_of(size)) == old) {
            *usable = old;
            return p;
        }
    }
    /* Huge to huge: move the pages (mremap), copy nothing. */
    if (seg->kind == ZP_KIND_HUGE && size > ZP_MAX_CLASS_SIZE) {
        void *m = zp_huge_remap(seg, p, size, usable);
        if (m) return m;
    }
    void *n = zp_malloc_fast(size, usable);
    if (!n) return NULL;
    memcpy(n, p, old < size ? old : size);
    zp_free_fast(p);
    return n;
}

/* ---- purge ------------------------------------------------------------------------ */

static void heap_purge(zp_heap *heap) {
    zp_rbatch_flush_if(heap);
    drain_delayed(heap);
    for (unsigned c = 0; c < ZP_NCLASSES; c++) {
        zp_page *page, *next;
        for (page = heap->queues[c].first; page; page = next) {
            next = page->next;
            zp_page_collect(page);
            if (page->used == 0) {
                zp_pageq_remove(&heap->queues[c], page);
                zp_segment_page_free(heap, page);
            }
        }
        queue_fix(heap, c);
    }
    zp_heap_purge_dirty(heap, 0);
}

static void request_purge(zp_heap *heap, void *self) {
    if (heap != self && !heap->orphan)
        atomic_store_explicit(&heap->purge_request, 1, memory_order_relaxed);
}

int zp_purge(void) {
    zp_heap *heap = zp_tl_heap;
    if (heap != &zp_empty_heap) {
        zp_rbatch_flush_if(heap);
        heap_purge(heap);
    }
    /* Other threads' pages belong to them: ask, they purge on their next
     * slow path. */
    zp_heap_registry_each(request_purge, heap);
    zp_heaps_expire_parked(1);
    zp_segments_collect_abandoned();
    zp_segments_release_cache();
    zp_huge_cache_release();
    return 0;
}

/* ---- thread exit ------------------------------------------------------------------- */

static void heap_abandon(zp_heap *heap) {
    /* No notification may be in flight once we let go of the heap. */
    for (zp_page *page = heap->full.first; page; page = page->next) page_stop_notify(page, 1);
    drain_delayed(heap);
    while (heap->full.first) page_unfull(heap, heap->full.first);
    for (unsigned c = 0; c < ZP_NCLASSES; c++) {
        zp_page *page;
        while ((page = heap->queues[c].first) != NULL) {
            zp_pageq_remove(&heap->queues[c], page);
            zp_page_collect(page);
            if (page->used == 0) {
                zp_segment_page_free(heap, page);
            } else {
                /* Its free list stays: the adopter continues from it. */
                zp_page_set_owner(page, NULL, 0);
            }
        }
        zp_heap_set_direct(heap, c, &zp_empty_page);
    }
    zp_segments_abandon(heap);
}

/* Fold an abandoned heap's counters into the globals and recycle it. */
static void heap_retire(zp_heap *heap) {
    zp_lock_acquire(&global_lock);
    for (unsigned c = 0; c < ZP_NCLASSES; c++) {
        long v = atomic_load_explicit(&heap->live[c], memory_order_relaxed);
        atomic_fetch_add_explicit(&zp_stat.class_live_dead[c], v, memory_order_relaxed);
        atomic_store_explicit(&heap->live[c], 0, memory_order_relaxed);
    }
    if (heap->prev_heap)
        heap->prev_heap->next_heap = heap->next_heap;
    else
        heap_registry = heap->next_heap;
    if (heap->next_heap) heap->next_heap->prev_heap = heap->prev_heap;
    heap->next_heap = heap_free_list;
    heap_free_list = heap;
    zp_lock_release(&global_lock);
}

static int heap_owns_segments(const zp_heap *heap) {
    for (unsigned k = 0; k < ZP_KINDS; k++)
        if (heap->segments[k].first) return 1;
    return 0;
}

/* A thread whose first call was a free got a fresh heap (heap_init_thread:
 * a consumer must not sit on parked pages it never allocates from). At its
 * first allocation, still owning no segment, it trades that heap for the
 * newest parked one, so a worker that starts by freeing what its
 * predecessor left (Larson's server threads do: every generation frees its
 * inherited blocks before it allocates) reuses the predecessor's pages
 * instead of carving new ones while the parked heaps wait and age out.
 * Before 2026-12-04 every Larson generation took a fresh heap: the parking
 * lot filled, each further exit abandoned its heap and purged its pages
 * (1,028 of the run's 1,926 madvise calls) and peak RSS was 2x jemalloc's.
 * The fresh heap holds nothing but counters (its live counts went negative
 * by the remote frees it made) and held remote frees: those are pushed,
 * the counters folded by heap_retire, so accounting stays exact. */
static ZP_COLD zp_heap *heap_trade_for_parked(zp_heap *fresh) {
    if (fresh->orphan) return fresh;
    zp_rbatch_flush_if(fresh);
    zp_lock_acquire(&global_lock);
    zp_heap *heap = parked_pop();
    zp_lock_release(&global_lock);
    if (!heap) return fresh;
    heap_sweep(heap, 1, 0); /* as heap_init_thread does for a parked heap */
    zp_tl_heap = heap;
    heap_abandon(fresh); /* no page to let go of; drains its xdelayed */
    heap_retire(fresh);
    return heap;
}

/* Park heap for the next thread; 0 when the parking lot is full. Its dirty
 * pages beyond the reserve go back first, so a parked heap holds little
 * more than its pages in use. It stays in the registry: statistics still
 * sum its counters. */
static int heap_park(zp_heap *heap) {
    zp_heap_purge_to(heap, zp_pol.dirty_reserve);
    ZP_CHECK_HEAP(heap);
    zp_lock_acquire(&global_lock);
    int ok = parked_count < zp_pol.heap_park_max && !heap->orphan;
    if (ok) {
        heap->parked_since = zm_os_clock_ms();
        heap->next_parked = heap_parked;
        heap_parked = heap;
        parked_count++;
        atomic_store_explicit(&parked_hint, parked_count, memory_order_relaxed);
    }
    zp_lock_release(&global_lock);
    return ok;
}

void zp_heaps_expire_parked(int all) {
    if (!atomic_load_explicit(&parked_hint, memory_order_relaxed)) return;
    uint64_t now = zm_os_clock_ms();
    for (;;) {
        /* The oldest is last: take it if it aged out (any, with all). */
        zp_lock_acquire(&global_lock);
        zp_heap **link = &heap_parked;
        while (*link && (*link)->next_parked) link = &(*link)->next_parked;
        zp_heap *old = *link;
        if (old && (all || now - old->parked_since >= zp_pol.dirty_age_ms)) {
            *link = NULL;
            parked_count--;
            atomic_store_explicit(&parked_hint, parked_count, memory_order_relaxed);
        } else {
            old = NULL;
        }
        zp_lock_release(&global_lock);
        if (!old) return;
        /* Nobody else can reach it now: abandon it as its thread would. */
        heap_abandon(old);
        heap_retire(old);
    }
}

void zp_heap_thread_exit(void) {
    zp_heap *heap = zp_tl_heap;
    if (heap == &zp_empty_heap) return;
    /* Push the held remote frees first: they may land on our own pages
     * (segments reclaimed since) or our xdelayed, which abandon drains. */
    zp_rbatch_flush_if(heap);
    zp_tl_heap = &zp_empty_heap;
    /* A heap that owns no segment (its thread only freed) has nothing for a
     * successor: parked, it would be taken first (newest first) instead of
     * the one whose pages the next thread would reuse. */
    if (heap_owns_segments(heap) && heap_park(heap)) return;
    heap_abandon(heap);
    heap_retire(heap);
}

/* ---- fork ----------------------------------------------------------------------------- */

void zp_heap_fork_prepare(void) {
    /* The child continues this thread only: its held remote frees go out
     * now, so neither process keeps them back. */
    zp_rbatch_flush_if(zp_tl_heap);
    zp_lock_acquire(&global_lock);
    zp_segment_fork_prepare();
    zp_huge_fork_prepare();
}

void zp_heap_fork_parent(void) {
    zp_huge_fork_parent();
    zp_segment_fork_parent();
    zp_lock_release(&global_lock);
}

/* Only this thread survives. Other heaps' lists may have been mid-update in
 * their (now gone) threads, so they are left alone: orphaned, their blocks
 * still freeable (remote frees), their memory not reused in the child. */
void zp_heap_fork_child(void) {
    zp_huge_fork_child();
    zp_segment_fork_child();
    atomic_flag_clear(&global_lock.flag);
    zp_heap *self = zp_tl_heap;
    for (zp_heap *h = heap_registry; h; h = h->next_heap)
        if (h != self) h->orphan = 1;
    /* Parked heaps are orphans too: simplest to leave them all alone. */
    heap_parked = NULL;
    parked_count = 0;
    atomic_store_explicit(&parked_hint, 0, memory_order_relaxed);
    if (self == &zp_empty_heap) return;
    /* A parent thread may have died (for us) halfway through notifying one
     * of our full pages: put the page back to "notify me". */
    for (zp_page *page = self->full.first; page; page = page->next) {
        uintptr_t tf = atomic_load_explicit(&page->xthread_free, memory_order_relaxed);
        if ((tf & ZP_TF_MASK) == ZP_TF_NOTIFYING)
            atomic_store_explicit(&page->xthread_free,
                                  (tf & ~(uintptr_t)ZP_TF_MASK) | ZP_TF_NOTIFY,
                                  memory_order_relaxed);
    }
}
