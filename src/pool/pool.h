/* pool.h: the pool allocator's data structures and its inline fast paths.
 *
 * Every structure of the allocator is declared here, so the layout can be
 * read in one place (docs/design.md draws it). backend_pool.c includes this
 * file and inlines zp_malloc_fast()/zp_free_fast(); every slow path lives
 * out of line in the other files of src/pool.
 *
 * Memory is carved out of 4 MiB segments aligned to 4 MiB. The segment
 * header (at the segment's start) describes its pages, so any block pointer
 * finds its page by masking: no per-block header. One page serves one size
 * class and belongs to one thread heap, which alone touches its local free
 * list; other threads push freed blocks onto the page's atomic thread-free
 * list. Allocations above the largest class get a mapping of their own
 * ("huge", huge.c), kept a while in a small cache when freed.
 */
#ifndef ZMALLOC_POOL_H
#define ZMALLOC_POOL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define zp_likely(x) __builtin_expect(!!(x), 1)
#define zp_unlikely(x) __builtin_expect(!!(x), 0)
#define ZP_COLD __attribute__((noinline, cold))
#define ZP_HIDDEN __attribute__((visibility("hidden")))

/* ---- geometry ------------------------------------------------------------ */

#define ZP_SEG_SHIFT 22
#define ZP_SEG_SIZE ((size_t)1 << ZP_SEG_SHIFT)
#define ZP_SEG_MASK (ZP_SEG_SIZE - 1)
/* Bytes at the start of a segment kept for its header. Also the alignment
 * every page area has, hence the largest alignment served from a class.
 * 16 KiB: 64 page headers of two cache lines each (owner / remote) take 8. */
#define ZP_HDR_SIZE ((size_t)16384)

enum zp_kind {
    ZP_KIND_SMALL = 0,  /* 64 pages of 64 KiB: blocks up to 8 KiB      */
    ZP_KIND_MEDIUM = 1, /* 8 pages of 512 KiB: blocks up to 64 KiB     */
    ZP_KIND_LARGE = 2,  /* 1 page of 4 MiB: blocks up to 256 KiB       */
    ZP_KIND_HUGE = 3,   /* one block, its own mapping                  */
    ZP_KINDS = 3        /* kinds carved into pages                     */
};
#define ZP_SMALL_PAGE_SHIFT 16
#define ZP_MEDIUM_PAGE_SHIFT 19
/* Huge segments: any offset maps to page 0. */
#define ZP_HUGE_PAGE_SHIFT 48
#define ZP_MAX_PAGES (ZP_SEG_SIZE >> ZP_SMALL_PAGE_SHIFT)

/* ---- size classes ----------------------------------------------------------
 * 8, 16, ..., 64 (8-byte steps), 80, ..., 128 (16-byte steps), then 8 classes
 * per doubling: the step in (2^b, 2^(b+1)] is 2^(b-3), so the waste of any
 * request is below 16 bytes or below 12.5% of the block. 100 classes, the
 * largest 256 KiB.
 *
 * Why 8-byte steps up to 64 (decided 2026-12-04, issue 11): servers allocate
 * masses of 24-byte dict entries and 56-byte dicts. With 16-byte steps those
 * shared the 32 and 64 pages with other objects, so the holes a deletion
 * left were pinned by blocks the server's defragmenter never moves (Valkey
 * 8.0's pubsub test stalled at 5.1% fragmentation), and each such block
 * wasted 8 bytes. The jemalloc Redis and Valkey bundle is built with an
 * 8-byte quantum (--with-lg-quantum=3) for the same reasons; mimalloc and
 * tcmalloc have 8-byte steps too.
 *
 * Alignment: a block of class 8, 24, 40 or 56 is 8-aligned (every other
 * class is a multiple of 16 and its blocks are 16-aligned). An object of 24,
 * 40 or 56 bytes needs no more, its size being a multiple of its alignment;
 * zmalloc.h says so. An aligned request rounds its size up to a multiple of
 * the alignment, whose class is then a multiple of it (zp_aligned_alloc,
 * backend_pool.c), and the preload library, whose malloc promises glibc's
 * 16 bytes for every size, rounds requests up to 16 (preload.c). */
#define ZP_NCLASSES 100
#define ZP_MAX_CLASS_SIZE ((size_t)262144)
#define ZP_SMALL_MAX ((size_t)8192)
#define ZP_MEDIUM_MAX ((size_t)65536)
/* Classes up to 128 bytes: 8 of 8-byte steps, then 4 of 16. */
#define ZP_TINY_CLASSES 12u

static inline unsigned zp_class_of(size_t size) {
    if (size <= 64) return (unsigned)((size + 7) >> 3) - (size != 0);
    if (size <= 128) return 8u + (unsigned)((size - 65) >> 4);
    size_t s = size - 1;
    unsigned b = 63u - (unsigned)__builtin_clzl(s);
    return ZP_TINY_CLASSES + (b - 7u) * 8u + (unsigned)((s >> (b - 3u)) & 7u);
}

static inline size_t zp_class_size(unsigned cls) {
    if (cls < 8) return (size_t)(cls + 1) << 3;
    if (cls < ZP_TINY_CLASSES) return (size_t)64 + ((size_t)(cls - 7) << 4);
    unsigned b = 7u + (cls - ZP_TINY_CLASSES) / 8u, j = (cls - ZP_TINY_CLASSES) % 8u;
    return ((size_t)1 << b) + ((size_t)(j + 1) << (b - 3u));
}

static inline unsigned zp_kind_of_size(size_t block_size) {
    return block_size <= ZP_SMALL_MAX ? ZP_KIND_SMALL
           : block_size <= ZP_MEDIUM_MAX ? ZP_KIND_MEDIUM : ZP_KIND_LARGE;
}

/* ---- blocks, pages, segments --------------------------------------------- */

typedef struct zp_block {
    struct zp_block *next;
} zp_block;

struct zp_heap;

/* The low two bits of a page's xthread_free word (blocks are 8-aligned). */
enum {
    ZP_TF_NONE = 0,      /* remote frees push onto the page                 */
    ZP_TF_NOTIFY = 1,    /* page is full: the next remote free tells the heap */
    ZP_TF_NOTIFYING = 2, /* a remote freer is telling the heap right now     */
    ZP_TF_MASK = 3
};

/* Above the block pointer, xthread_free counts the blocks on its list, so
 * the owner collects without walking blocks the freers wrote. */
#define ZP_TF_PTR_BITS 48
#define ZP_TF_COUNT_ONE ((uintptr_t)1 << ZP_TF_PTR_BITS)
static inline uintptr_t zp_tf_ptr(uintptr_t tf) {
    return tf & (ZP_TF_COUNT_ONE - 1) & ~(uintptr_t)ZP_TF_MASK;
}

/* zp_page.xheap is the owner heap's address with this bit set while the
 * page is on the owner's full list: free's fast path compares the word
 * with the thread's heap, one test for "mine, and not full". */
#define ZP_XHEAP_FULL ((uintptr_t)1)

/* zp_page.state: a page is free (its bit set in the segment's free_mask)
 * or in use by a heap (in a class queue or, with ZP_PAGE_IN_FULL, in the
 * heap's full list). */
enum { ZP_PAGE_FREE = 0, ZP_PAGE_IN_USE = 1 };

typedef struct zp_page {
    /* Owner-only fields: touched by the owning thread alone. */
    zp_block *free;     /* blocks ready to hand out                   */
    uint32_t used;      /* blocks out, counting unprocessed remote frees */
    uint32_t capacity;  /* blocks carved so far (lazily, to spare RSS) */
    uint32_t reserved;  /* blocks that fit in the page                 */
    uint32_t block_size;
    uint8_t cls;
    uint8_t state;  /* ZP_PAGE_FREE / ZP_PAGE_IN_USE                */
    uint8_t dirty;  /* free page still resident (not yet purged)    */
    uint8_t index;  /* position in the segment                      */
    /* Owner-only: 4 KiB pages of the area carved since the last decommit
     * (high-water mark, kept while the page sits dirty or is reused). What
     * the page adds to zp_stat.committed and to its heap's dirty_bytes. */
    uint16_t touched;
    /* Queue links: class queue, the heap's full list, or its dirty list. */
    struct zp_page *next, *prev;
    char *start;        /* first block                               */
    uint64_t free_since; /* ms clock when the page went free (dirty list) */
    /* Read by every thread that frees into this page: a cache line of its
     * own, so remote frees do not pull the line the owner's malloc writes. */
    /* owner | ZP_XHEAP_FULL; 0 when free or abandoned (zp_page_owner) */
    _Alignas(64) _Atomic uintptr_t xheap;
    _Atomic uintptr_t xthread_free;  /* remote frees | ZP_TF_* state        */
    uint8_t rcls;
    uint32_t rblock_size;
    /* Owner-only, slow paths only (hence on this line, which the owner's
     * fast paths never touch): free blocks whose interior OS pages the
     * purge timer gave back (page.c, "cold blocks"). They are handed out
     * again only by the slow path, which counts their pages back in. */
    zp_block *cold;
    uint32_t cold_n;     /* blocks on the cold list                     */
    uint32_t cold_bytes; /* bytes decommitted inside them: not in committed */
} zp_page;

typedef struct zp_segment {
    uint8_t kind;
    uint8_t page_shift;
    uint16_t npages;
    uint16_t used_pages;
    uint64_t free_mask; /* bit i: page i is not in use               */
    struct zp_segment *next, *prev; /* heap list, abandoned list, cache */
    size_t map_size;    /* huge: bytes mapped from the segment start  */
    size_t huge_usable; /* huge: usable bytes from the user pointer   */
    zp_page pages[ZP_MAX_PAGES];
} zp_segment;

_Static_assert(sizeof(zp_segment) <= ZP_HDR_SIZE, "segment header too large");
_Static_assert(sizeof(zp_page) == 128, "zp_page grew");
/* zp_page.touched unit, and the step of lazy carving: 4 KiB, the smallest
 * page the kernel faults in (x86-64; on a 16 KiB-page kernel a step then
 * covers part of a page, so committed undercounts by at most a page per
 * pool page). */
#define ZP_TOUCH_SHIFT 12
#define ZP_TOUCH_SIZE ((size_t)1 << ZP_TOUCH_SHIFT)

/* The page's owner (NULL when free or abandoned), whether it is on the
 * owner's full list, and the one store that sets both. Release on the
 * store: a remote freer that reads the owner (acquire) sees its heap. */
static inline struct zp_heap *zp_page_owner(const zp_page *page, memory_order mo) {
    return (struct zp_heap *)(atomic_load_explicit(&page->xheap, mo) & ~ZP_XHEAP_FULL);
}
static inline int zp_page_in_full(const zp_page *page) {
    return (atomic_load_explicit(&page->xheap, memory_order_relaxed) & ZP_XHEAP_FULL) != 0;
}
static inline void zp_page_set_owner(zp_page *page, struct zp_heap *heap, int full) {
    atomic_store_explicit(&page->xheap, (uintptr_t)heap | (full ? ZP_XHEAP_FULL : 0),
                          memory_order_release);
}

/* ---- intrusive doubly linked lists ------------------------------------------
 * Pages (class queues, full and dirty lists) and segments (a heap's
 * segments, the abandoned list, the cache) are linked through their own
 * next/prev fields. ZP_LIST defines the queue type and its three
 * operations once for both element types. */
#define ZP_LIST(qname, T)                                                       \
    typedef struct qname {                                                      \
        T *first, *last;                                                        \
    } qname;                                                                    \
    static inline void qname##_push_front(qname *q, T *e) {                     \
        e->prev = NULL;                                                         \
        e->next = q->first;                                                     \
        if (q->first)                                                           \
            q->first->prev = e;                                                 \
        else                                                                    \
            q->last = e;                                                        \
        q->first = e;                                                           \
    }                                                                           \
    static inline void qname##_push_back(qname *q, T *e) {                      \
        e->next = NULL;                                                         \
        e->prev = q->last;                                                      \
        if (q->last)                                                            \
            q->last->next = e;                                                  \
        else                                                                    \
            q->first = e;                                                       \
        q->last = e;                                                            \
    }                                                                           \
    static inline void qname##_remove(qname *q, T *e) {                         \
        if (e->prev)                                                            \
            e->prev->next = e->next;                                            \
        else                                                                    \
            q->first = e->next;                                                 \
        if (e->next)                                                            \
            e->next->prev = e->prev;                                            \
        else                                                                    \
            q->last = e->prev;                                                  \
        e->next = e->prev = NULL;                                               \
    }

ZP_LIST(zp_pageq, zp_page)
ZP_LIST(zp_segq, zp_segment)

/* A thread's remote frees into one page of one class, not yet pushed. */
typedef struct zp_rbatch {
    zp_page *page;
    zp_block *head, *tail;
    size_t n;
} zp_rbatch;
#define ZP_RB_MAX 32                   /* blocks per chain before a push */
#define ZP_RB_BYTES ((size_t)64 << 10) /* bytes held by a thread, all chains */

/* One per thread. Counters are written by the owner only (relaxed atomics
 * so readers in zm_be_get_stats are race-free) and summed by readers. */
/* Requests up to ZP_DIRECT_MAX bytes find their page with no class
 * arithmetic: direct_small[(size + 7) / 8] is the first page of the
 * size's class queue (zp_heap_set_direct keeps both tables in step).
 * Slot 0 (0-byte requests) is always the empty page: a 0-byte request
 * takes the slow path, so every block the fast path hands out was asked
 * for with at least one byte, and holds at most 16 times its request
 * (the front end's memory limit relies on that: zmalloc.c). */
#define ZP_DIRECT_MAX ((size_t)1024)
#define ZP_DIRECT_SLOTS (ZP_DIRECT_MAX / 8 + 1)
#define ZP_DIRECT_SLOT(size) (((size) + 7) >> 3)

typedef struct zp_heap {
    zp_page *direct_small[ZP_DIRECT_SLOTS]; /* by ZP_DIRECT_SLOT(size) */
    zp_page *direct[ZP_NCLASSES]; /* first page of each queue, or the empty page */
    _Atomic(long) live[ZP_NCLASSES]; /* blocks in use, by class (+/- by this thread) */
    zp_pageq queues[ZP_NCLASSES];
    zp_pageq full;
    zp_pageq dirty[ZP_KINDS];    /* free pages still resident, newest first */
    zp_segq segments[ZP_KINDS];  /* owned segments, those with free pages first */
    _Atomic(zp_block *) xdelayed; /* blocks freed remotely into full pages */
    _Atomic int purge_request;
    size_t dirty_bytes;
    uint64_t last_purge_ms;
    /* Slow-path calls since the purge timer last looked at the clock, and
     * the class queue its sweep (heap.c) resumes at. */
    uint32_t tick_calls;
    uint32_t sweep_cls;
    uint64_t last_sweep_ms;
    /* Remote frees held back to be pushed a chain at a time (page.c). */
    zp_rbatch rb[ZP_NCLASSES];
    uint64_t rb_mask[2]; /* bit c: rb[c] holds blocks */
    size_t rb_bytes;
    int orphan; /* after fork: the thread does not exist in this process */
    struct zp_heap *next_heap, *prev_heap; /* registry, under heap.c's global_lock */
    /* Every heap struct ever carved (they are recycled, never unmapped),
     * newest first: set once before publication and kept across reuse, so
     * zp_used_bytes() walks it with no lock, from a signal handler too. */
    struct zp_heap *next_all;
    /* Parked (its thread exited, heap.c): the next parked one, and when. */
    struct zp_heap *next_parked;
    uint64_t parked_since;
#ifdef ZMALLOC_POOL_CHECK
    /* Allocation slow paths left before the next whole-heap check
     * (verification builds only: check.c, zp_check_slow_path). */
    size_t check_countdown;
#endif
} zp_heap;

/* The page that serves class cls first (the empty page when none). */
static inline void zp_heap_set_direct(zp_heap *heap, unsigned cls, zp_page *page) {
    heap->direct[cls] = page;
    if (cls < 8) { /* 8..64: one slot each (slot 0, size 0: the empty page) */
        heap->direct_small[cls + 1] = page;
        return;
    }
    if (cls >= ZP_TINY_CLASSES + 3 * 8) return; /* above 1024 */
    /* The slots of the sizes in (previous class, this class]. */
    size_t hi = zp_class_size(cls), lo = zp_class_size(cls - 1);
    for (size_t slot = lo / 8 + 1; slot <= hi / 8; slot++) heap->direct_small[slot] = page;
}

/* ---- globals (heap.c) --------------------------------------------------------- */

extern zp_heap zp_empty_heap ZP_HIDDEN;
extern __thread zp_heap *zp_tl_heap __attribute__((tls_model("initial-exec"))) ZP_HIDDEN;

/* ---- slow paths --------------------------------------------------------------- */

void *zp_malloc_generic(zp_heap *heap, size_t size, size_t *usable) ZP_COLD ZP_HIDDEN;
void zp_free_generic(zp_segment *seg, zp_page *page, void *p) ZP_COLD ZP_HIDDEN;
void *zp_aligned_alloc(size_t alignment, size_t size, size_t *usable) ZP_HIDDEN;
void *zp_realloc(void *p, size_t size, size_t *usable) ZP_HIDDEN;
/* A zeroed block: only what a reused block may hold is cleared (a fresh
 * huge mapping is zero already). */
void *zp_calloc(size_t size, size_t *usable) ZP_HIDDEN;
int zp_purge(void) ZP_HIDDEN;

/* page.c */
void zp_page_init(zp_heap *heap, zp_segment *seg, zp_page *page, unsigned cls) ZP_HIDDEN;
void zp_page_extend(zp_page *page) ZP_HIDDEN;
/* A free block for a page whose free list is empty: a cold block warmed
 * up, else more carving (nothing when the page is fully carved). */
void zp_page_refill(zp_page *page) ZP_HIDDEN;
/* The timer: past the first keep bytes of page's free list, give back the
 * interior pages of free blocks and move them to the cold list. */
void zp_page_cool(zp_page *page, size_t keep) ZP_HIDDEN;
/* Page going free: its cold blocks' accounting undone (segment.c). */
void zp_page_drop_cold(zp_segment *seg, zp_page *page) ZP_HIDDEN;
void zp_page_collect(zp_page *page) ZP_HIDDEN;
/* 1 when no block of page is out (remote frees of all of them dropped, not
 * walked): the caller frees the page. */
int zp_page_collect_if_empty(zp_page *page) ZP_HIDDEN;
void zp_free_remote(zp_page *page, zp_block *head, zp_block *tail, uintptr_t n) ZP_HIDDEN;
void zp_rbatch_add(zp_heap *heap, zp_page *page, zp_block *b) ZP_HIDDEN;
void zp_rbatch_flush(zp_heap *heap) ZP_HIDDEN;
static inline void zp_rbatch_flush_if(zp_heap *heap) {
    if (heap->rb_mask[0] | heap->rb_mask[1]) zp_rbatch_flush(heap);
}

/* segment.c */
zp_page *zp_segment_page_alloc(zp_heap *heap, unsigned kind) ZP_HIDDEN;
void zp_segment_page_free(zp_heap *heap, zp_page *page) ZP_HIDDEN;
void zp_segment_release_if_idle(zp_heap *heap, zp_segment *seg) ZP_HIDDEN;
void zp_segments_abandon(zp_heap *heap) ZP_HIDDEN;
int zp_segments_reclaim(zp_heap *heap, unsigned kind) ZP_HIDDEN;
void zp_segments_collect_abandoned(void) ZP_HIDDEN;
void zp_segments_release_cache(void) ZP_HIDDEN;
void zp_segment_fork_prepare(void) ZP_HIDDEN;
void zp_segment_fork_parent(void) ZP_HIDDEN;
void zp_segment_fork_child(void) ZP_HIDDEN;

/* huge.c */
void *zp_huge_alloc(size_t size, size_t alignment, size_t *usable, int zero) ZP_HIDDEN;
void zp_huge_free(zp_segment *seg) ZP_HIDDEN;
void *zp_huge_remap(zp_segment *seg, void *p, size_t size, size_t *usable) ZP_HIDDEN;
void zp_huge_cache_expire_aged(void) ZP_HIDDEN;
void zp_huge_cache_release(void) ZP_HIDDEN;
void zp_huge_fork_prepare(void) ZP_HIDDEN;
void zp_huge_fork_parent(void) ZP_HIDDEN;
void zp_huge_fork_child(void) ZP_HIDDEN;

/* purge.c: the dirty-page policy, and every policy value of the pool: the
 * pool_* rows of src/options.h, copied into zp_pol once, when the first
 * heap is made (nothing reads zp_pol before that: every path that maps
 * memory creates the thread's heap first). */
typedef struct zp_policy {
    uint64_t dirty_age_ms;      /* a free page stays resident at least this long */
    uint64_t purge_interval_ms; /* the timer looks at a heap's dirty pages this often */
    size_t dirty_reserve;       /* dirty bytes per heap the timer leaves alone */
    size_t dirty_max;           /* dirty bytes per heap purged at once above this */
    size_t segment_cache;       /* empty segments kept with their header resident */
    size_t huge_cache_bytes;    /* bytes of freed huge mappings kept for reuse */
    size_t huge_cache_entry_max; /* largest mapping the huge cache keeps */
    uint64_t huge_cache_age_ms; /* how long a cached huge mapping waits */
    size_t heap_park_max;       /* exited threads' heaps kept whole for new threads */
    uint32_t carve_bytes;       /* bytes a page carves at a time */
} zp_policy;
extern zp_policy zp_pol ZP_HIDDEN;
void zp_policy_init(void) ZP_HIDDEN;
static inline size_t zp_page_touched(const zp_page *page) {
    return (size_t)page->touched << ZP_TOUCH_SHIFT;
}
void zp_page_decommit(zp_segment *seg, zp_page *page) ZP_HIDDEN;
void zp_heap_dirty_add(zp_heap *heap, zp_page *page) ZP_HIDDEN;
zp_page *zp_heap_dirty_take(zp_heap *heap, unsigned kind) ZP_HIDDEN;
void zp_heap_purge_tick(zp_heap *heap) ZP_HIDDEN;
void zp_heap_purge_dirty(zp_heap *heap, uint64_t older_than_ms) ZP_HIDDEN;
void zp_heap_purge_to(zp_heap *heap, size_t keep) ZP_HIDDEN;
/* heap.c: parked heaps older than dirty_age_ms are abandoned (from the
 * purge timer); with all set, every parked heap (zm_be_purge). */
void zp_heaps_expire_parked(int all) ZP_HIDDEN;
/* heap.c: the timer's sweep of the heap's class queues: collect remote
 * frees, retire the pages they emptied. */
void zp_heap_sweep(zp_heap *heap) ZP_HIDDEN;

/* check.c: the checked build (ZMALLOC_POOL_CHECK) verifies the pool's
 * invariants on its slow paths and aborts with a message naming the first
 * one broken; otherwise the checks compile to nothing.
 *
 * ZP_CHECK_SLOW_PATH is the allocation slow path's check. With
 * -DZMALLOC_POOL_CHECK=ON (and in fuzz builds) it walks the whole heap on
 * every call. A verification build (ZMALLOC_DEBUG, which turns the checks
 * on by itself and defines ZMALLOC_POOL_CHECK_AMORTIZED) checks the page it
 * is about to allocate from on every call and the whole heap once every n
 * calls, n being the pages the previous walk visited: the walk costs
 * O(heap), and the verification layer's quarantine spreads frees over many
 * pages, so a walk on every call made the pool 7x slower than libc under
 * ZMALLOC_DEBUG=1 (issue 13, item 4). Each invariant is still verified, at
 * an amortised cost of about one page check per slow path. */
#ifdef ZMALLOC_POOL_CHECK
void zp_check_page(const zp_page *page, const char *where) ZP_HIDDEN;
void zp_check_segment(const zp_segment *seg, const char *where) ZP_HIDDEN;
/* Returns the pages it visited. */
size_t zp_check_heap(const zp_heap *heap, const char *where) ZP_HIDDEN;
void zp_check_slow_path(zp_heap *heap, const zp_page *page, const char *where) ZP_HIDDEN;
#define ZP_CHECK_STR2(x) #x
#define ZP_CHECK_STR(x) ZP_CHECK_STR2(x)
#define ZP_WHERE __FILE__ ":" ZP_CHECK_STR(__LINE__)
#define ZP_CHECK_PAGE(p) zp_check_page((p), ZP_WHERE)
#define ZP_CHECK_SEGMENT(s) zp_check_segment((s), ZP_WHERE)
#define ZP_CHECK_HEAP(h) ((void)zp_check_heap((h), ZP_WHERE))
#define ZP_CHECK_SLOW_PATH(h, p) zp_check_slow_path((h), (p), ZP_WHERE)
#else
#define ZP_CHECK_PAGE(p) ((void)0)
#define ZP_CHECK_SEGMENT(s) ((void)0)
#define ZP_CHECK_HEAP(h) ((void)0)
#define ZP_CHECK_SLOW_PATH(h, p) ((void)0)
#endif

/* heap.c: thread exit and fork, called by lifecycle.c through backend_pool.c. */
void zp_heap_thread_exit(void) ZP_HIDDEN;
void zp_heap_fork_prepare(void) ZP_HIDDEN;
void zp_heap_fork_parent(void) ZP_HIDDEN;
void zp_heap_fork_child(void) ZP_HIDDEN;

/* heap.c: locking for global lists (never on a fast path). */
typedef struct zp_lock {
    atomic_flag flag;
} zp_lock;
void zp_lock_acquire(zp_lock *l) ZP_HIDDEN;
static inline void zp_lock_release(zp_lock *l) {
    atomic_flag_clear_explicit(&l->flag, memory_order_release);
}
void zp_local_free(zp_heap *heap, zp_page *page, zp_block *b) ZP_HIDDEN;
void zp_heap_page_retire(zp_heap *heap, zp_page *page) ZP_HIDDEN;

/* stats.c: process-wide counters kept in slow paths only. */
typedef struct zp_counters {
    _Atomic(long) class_pages[ZP_NCLASSES];
    _Atomic(long) class_live_dead[ZP_NCLASSES]; /* folded from exited heaps */
    _Atomic(long) remote_live[ZP_NCLASSES];     /* frees by heapless threads */
    _Atomic(size_t) mapped;    /* bytes of address space held              */
    _Atomic(size_t) committed; /* bytes touched: headers, carved page extents, huge */
    _Atomic(size_t) active;    /* bytes of pages in use and huge blocks     */
    _Atomic(size_t) carved;    /* bytes of blocks carved in class pages in use */
    _Atomic(size_t) huge_live; /* usable bytes of live huge blocks          */
    _Atomic(size_t) huge_count;
    _Atomic(size_t) segments;
    _Atomic(size_t) abandoned;
} zp_counters;
extern zp_counters zp_stat ZP_HIDDEN;
static inline void zp_stat_add(_Atomic(size_t) *c, size_t v) {
    atomic_fetch_add_explicit(c, v, memory_order_relaxed);
}
static inline void zp_stat_sub(_Atomic(size_t) *c, size_t v) {
    atomic_fetch_sub_explicit(c, v, memory_order_relaxed);
}
/* Owner-only counter update without a locked instruction: one add to
 * memory on x86-64 (readers use relaxed atomic loads; an aligned 8-byte
 * store is atomic there); elsewhere, and under TSan, which cannot see the
 * asm, an atomic load and store. */
static inline void zp_count(_Atomic(long) *c, long d) {
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__)
    __asm__("addq %1, %0" : "+m"(*(long *)c) : "er"(d));
#else
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
#endif
}
/* defrag.c: gives back the calling thread's pages emptied by remote frees
 * (a bounded step; zm_be_get_stats runs it when asked to refresh). */
void zp_defrag_sweep(zp_heap *heap) ZP_HIDDEN;
/* defrag.c: the calling thread's current pages (one per class): carved
 * bytes of those that are empty, free carved bytes of all of them. */
typedef struct zp_front {
    size_t idle_carved, free_carved;
} zp_front;
zp_front zp_defrag_front(zp_heap *heap) ZP_HIDDEN;
/* heap.c: frees into full pages that other threads handed over. */
void zp_heap_drain_delayed(zp_heap *heap) ZP_HIDDEN;
void zp_heap_registry_each(void (*fn)(zp_heap *, void *), void *arg) ZP_HIDDEN;
/* The pool's own figures (stats.c explains each); backend_pool.c hands
 * them to the front end. */
typedef struct zp_stats {
    size_t allocated, active, resident, retained, muzzy, frag_smallbins;
} zp_stats;
void zp_stats_get(zp_stats *out) ZP_HIDDEN;
void zp_stats_print(FILE *out, int json) ZP_HIDDEN;
/* Usable bytes of all live blocks: the used-memory total of the pool
 * backend. Lock-free and async-signal-safe; exact when no thread is inside
 * an allocation, a free or its exit. */
size_t zp_used_bytes(void) ZP_HIDDEN;

/* ---- pointer to segment and page ---------------------------------------------
 * (p - 1) rather than p: a huge block aligned to more than a segment starts
 * exactly on a segment boundary and keeps its header in the segment before. */
static inline zp_segment *zp_segment_of(const void *p) {
    return (zp_segment *)(((uintptr_t)p - 1) & ~(uintptr_t)ZP_SEG_MASK);
}
static inline zp_page *zp_page_of(zp_segment *seg, const void *p) {
    return &seg->pages[((uintptr_t)p - (uintptr_t)seg) >> seg->page_shift];
}

/* ---- fast paths -----------------------------------------------------------------
 * malloc: TLS load, a table index, one pop. A thread that has no heap yet
 * sees the empty heap whose every queue is an empty page, so the fast path
 * needs no "initialised?" test: the empty free list sends it to the slow path. */

/* Pops page's first free block (NULL when there is none) and counts it. */
static inline void *zp_page_pop(zp_heap *heap, zp_page *page, size_t *usable) {
    zp_block *b = page->free;
    if (zp_likely(b != NULL)) {
        page->free = b->next;
        page->used++;
        zp_count(&heap->live[page->cls], 1);
        *usable = page->block_size;
    }
    return b;
}

/* The fast path alone, for callers with a slow path of their own: NULL,
 * with nothing done, when it cannot serve the request at once (always for
 * size 0: slot 0 is the empty page). Sizes up to ZP_DIRECT_MAX. */
static inline void *zp_malloc_try(size_t size, size_t *usable) {
    zp_heap *heap = zp_tl_heap;
    if (zp_likely(size <= ZP_DIRECT_MAX))
        return zp_page_pop(heap, heap->direct_small[ZP_DIRECT_SLOT(size)], usable);
    return NULL;
}

static inline void *zp_malloc_fast(size_t size, size_t *usable) {
    zp_heap *heap = zp_tl_heap;
    void *b = NULL;
    if (zp_likely(size <= ZP_DIRECT_MAX))
        b = zp_page_pop(heap, heap->direct_small[ZP_DIRECT_SLOT(size)], usable);
    else if (zp_likely(size <= ZP_MAX_CLASS_SIZE))
        b = zp_page_pop(heap, heap->direct[zp_class_of(size)], usable);
    if (zp_likely(b != NULL)) return b;
    return zp_malloc_generic(heap, size, usable);
}

/* free: mask to the segment, index the page; if this thread owns the page
 * and it is not on the full list (one compare: ZP_XHEAP_FULL), push onto
 * its free list. */
static inline void zp_free_fast(void *p) {
    zp_segment *seg = zp_segment_of(p);
    zp_page *page = zp_page_of(seg, p);
    zp_heap *heap = zp_tl_heap;
    if (zp_likely(atomic_load_explicit(&page->xheap, memory_order_relaxed) == (uintptr_t)heap)) {
        zp_block *b = (zp_block *)p;
        b->next = page->free;
        page->free = b;
        zp_count(&heap->live[page->cls], -1);
        if (zp_likely(--page->used != 0)) return;
        /* The only page of its class stays (zp_heap_page_retire's first
         * rule, tested here: an alloc/free pair empties it every time). An
         * owned page off the full list is in its class queue (check.c
         * verifies it), so no links means it is alone there. */
        if (((uintptr_t)page->next | (uintptr_t)page->prev) == 0) return;
        zp_heap_page_retire(heap, page);
        return;
    }
    zp_free_generic(seg, page, p);
}

static inline size_t zp_usable_size(const void *p) {
    zp_segment *seg = zp_segment_of(p);
    if (zp_unlikely(seg->kind == ZP_KIND_HUGE)) return seg->huge_usable;
    return zp_page_of(seg, p)->block_size;
}

#endif
