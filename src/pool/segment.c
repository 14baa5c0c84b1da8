/* segment.c: 4 MiB segments, the pages inside them, and huge blocks.
 *
 * A segment belongs to one heap (thread) and is split into pages of one
 * size: 64 KiB (small kind), 512 KiB (medium) or the whole segment (large).
 * Pages that go empty stay resident on the heap's dirty list for a while, so
 * a workload that oscillates does not fault pages in and out; the oldest are
 * returned to the OS (MADV_DONTNEED) after ZP_DIRTY_AGE_MS (but for a
 * reserve of ZP_DIRTY_RESERVE per heap), or at once when a heap holds more
 * than ZP_DIRTY_MAX dirty bytes, or on zm_be_purge(). An empty segment goes
 * back only once its dirty pages are purged.
 *
 * When a thread exits its segments still holding live blocks go on a global
 * abandoned list; a thread that needs a page adopts one of those before it
 * maps a new segment, so thread churn reuses memory instead of growing.
 * Wholly free segments go to a small cache (pages decommitted) or to the
 * retained list (header decommitted too); segments come from 64 MiB arenas
 * and their address space is kept for reuse, never unmapped one by one.
 * The global lists are guarded by seg_lock, taken only on these slow paths.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <time.h>

#include "platform.h"
#include "pool.h"

#define ZP_DIRTY_MAX ((size_t)64 << 20)
#define ZP_DIRTY_AGE_MS 1000u
/* Dirty bytes per heap the timer never purges (zm_be_purge does). */
#define ZP_DIRTY_RESERVE ((size_t)2 << 20)
#define ZP_PURGE_INTERVAL_MS 250u
#define ZP_CACHE_MAX 8

static zp_lock seg_lock;
static zp_segq abandoned[ZP_KINDS];
static zp_segq cache;
static size_t cache_count;

uint64_t zp_clock_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void segq_push_front(zp_segq *q, zp_segment *s) {
    s->prev = NULL;
    s->next = q->first;
    if (q->first)
        q->first->prev = s;
    else
        q->last = s;
    q->first = s;
}

static void segq_push_back(zp_segq *q, zp_segment *s) {
    s->next = NULL;
    s->prev = q->last;
    if (q->last)
        q->last->next = s;
    else
        q->first = s;
    q->last = s;
}

static void segq_remove(zp_segq *q, zp_segment *s) {
    if (s->prev)
        s->prev->next = s->next;
    else
        q->first = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        q->last = s->prev;
    s->next = s->prev = NULL;
}

/* Bytes of the page's area touched since its last decommit. */
static size_t page_touched(const zp_page *page) {
    return (size_t)page->touched << ZP_TOUCH_SHIFT;
}

/* Only the touched part is resident: nothing to give back (no madvise)
 * when it is 0. */
static void decommit_page(zp_segment *seg, zp_page *page) {
    if (page->touched) {
        zm_os_decommit((char *)seg + (page->index ? (size_t)page->index << seg->page_shift
                                                  : ZP_HDR_SIZE),
                       page_touched(page));
        zp_stat_sub(&zp_stat.committed, page_touched(page));
        page->touched = 0;
    }
    page->dirty = 0;
}

static void segment_setup(zp_segment *seg, unsigned kind) {
    seg->kind = (uint8_t)kind;
    seg->page_shift = kind == ZP_KIND_SMALL ? ZP_SMALL_PAGE_SHIFT
                      : kind == ZP_KIND_MEDIUM ? ZP_MEDIUM_PAGE_SHIFT : ZP_SEG_SHIFT;
    seg->npages = (uint16_t)(ZP_SEG_SIZE >> seg->page_shift);
    seg->used_pages = 0;
    seg->free_mask = seg->npages == 64 ? ~(uint64_t)0 : ((uint64_t)1 << seg->npages) - 1;
    for (unsigned i = 0; i < seg->npages; i++) {
        zp_page *pg = &seg->pages[i];
        pg->index = (uint8_t)i;
        pg->state = ZP_PAGE_FREE;
        pg->dirty = 0;
        pg->touched = 0; /* every free page of a segment set up is clean */
        pg->next = pg->prev = NULL;
        atomic_store_explicit(&pg->xheap, NULL, memory_order_relaxed);
        atomic_store_explicit(&pg->flags, 0, memory_order_relaxed);
        atomic_store_explicit(&pg->xthread_free, 0, memory_order_relaxed);
    }
}

/* Segments are carved from 64 MiB arenas (one mmap, one kernel mapping for
 * 16 segments) and never unmapped one by one: a segment nobody needs is
 * decommitted, header included, and kept on the retained list for reuse.
 * That saves the over-map-and-trim syscalls per segment and keeps the
 * process's mapping count (fork, smaps) low. Under seg_lock. */
#define ZP_ARENA_SIZE ((size_t)64 << 20)
static char *arena_next, *arena_end;
static zp_segq retained;

/* A fresh segment of `kind` for heap: from the cache (header resident),
 * else the retained list, else an arena. */
static zp_segment *segment_new(zp_heap *heap, unsigned kind) {
    zp_segment *seg = NULL;
    int cached = 0;
    zp_lock_acquire(&seg_lock);
    if (cache.first) {
        seg = cache.first;
        segq_remove(&cache, seg);
        cache_count--;
        cached = 1;
    } else if (retained.first) {
        seg = retained.first;
        segq_remove(&retained, seg);
    } else {
        if (arena_next == arena_end) {
            /* Under an address-space limit a whole arena may not fit: then
             * one segment is an arena of its own. */
            size_t size = ZP_ARENA_SIZE;
            char *a = zm_os_map_aligned(size, ZP_SEG_SIZE);
            if (!a) a = zm_os_map_aligned(size = ZP_SEG_SIZE, ZP_SEG_SIZE);
            /* Block addresses must fit in ZP_TF_PTR_BITS (page.c packs a
             * count above them); user space is below that unless asked. */
            if (a && ((uintptr_t)(a + size - 1) >> ZP_TF_PTR_BITS) != 0) {
                zm_os_unmap(a, size);
                a = NULL;
            }
            if (a) {
                zp_stat_add(&zp_stat.mapped, size);
                arena_next = a;
                arena_end = a + size;
            }
        }
        if (arena_next != arena_end) {
            seg = (zp_segment *)arena_next;
            arena_next += ZP_SEG_SIZE;
        }
    }
    zp_lock_release(&seg_lock);
    if (!seg) return NULL;
    if (!cached) {
        zp_stat_add(&zp_stat.committed, ZP_HDR_SIZE);
        zp_stat_add(&zp_stat.segments, 1);
    }
    segment_setup(seg, kind);
    seg->owner = heap;
    segq_push_front(&heap->segments[kind], seg);
    return seg;
}

/* Under seg_lock: seg leaves use for the retained list. */
static void segment_retain_locked(zp_segment *seg) {
    zm_os_decommit(seg, ZP_HDR_SIZE);
    zp_stat_sub(&zp_stat.committed, ZP_HDR_SIZE);
    zp_stat_sub(&zp_stat.segments, 1);
    segq_push_front(&retained, seg);
}

/* All pages of seg are free and clean: cache it, or retain it. */
static void segment_release(zp_segment *seg) {
    seg->owner = NULL;
    zp_lock_acquire(&seg_lock);
    if (cache_count < ZP_CACHE_MAX) {
        segq_push_front(&cache, seg);
        cache_count++;
    } else {
        segment_retain_locked(seg);
    }
    zp_lock_release(&seg_lock);
}

zp_page *zp_segment_page_alloc(zp_heap *heap, unsigned kind) {
    /* Age dirty pages here too: a heap that only grows still lets go of
     * pages it freed long ago. */
    if (zp_clock_ms() - heap->last_purge_ms >= ZP_PURGE_INTERVAL_MS)
        zp_heap_purge_dirty(heap, ZP_DIRTY_AGE_MS);
    zp_page *page = heap->dirty[kind].first;
    zp_segment *seg;
    if (page) {
        /* Most recently freed first: it is the most likely still cached. */
        zp_pageq_remove(&heap->dirty[kind], page);
        seg = (zp_segment *)((uintptr_t)page & ~(uintptr_t)ZP_SEG_MASK);
        heap->dirty_bytes -= page_touched(page);
        page->dirty = 0;
    } else {
        seg = heap->segments[kind].first;
        if (!seg || !seg->free_mask) {
            seg = NULL;
            while (zp_segments_reclaim(heap, kind)) {
                if (heap->segments[kind].first->free_mask) {
                    seg = heap->segments[kind].first;
                    break;
                }
            }
            if (!seg) seg = segment_new(heap, kind);
            if (!seg) return NULL;
        }
        /* Clean page: committed grows as zp_page_extend carves it. */
        page = &seg->pages[__builtin_ctzll(seg->free_mask)];
    }
    seg->free_mask &= ~((uint64_t)1 << page->index);
    seg->used_pages++;
    if (!seg->free_mask && heap->segments[kind].last != seg) {
        segq_remove(&heap->segments[kind], seg);
        segq_push_back(&heap->segments[kind], seg);
    }
    return page;
}

/* Mark page free in its segment; stats only, no heap lists. */
static void page_mark_free(zp_segment *seg, zp_page *page) {
    atomic_fetch_sub_explicit(&zp_stat.class_pages[page->cls], 1, memory_order_relaxed);
    zp_stat_sub(&zp_stat.active, (size_t)page->capacity * page->block_size);
    page->state = ZP_PAGE_FREE;
    page->free = NULL;
    atomic_store_explicit(&page->flags, 0, memory_order_relaxed);
    atomic_store_explicit(&page->xheap, NULL, memory_order_relaxed);
    seg->free_mask |= (uint64_t)1 << page->index;
    seg->used_pages--;
}

static void huge_cache_expire_aged(void);

/* An empty segment goes back (to the cache or the retained list) once none
 * of its pages is dirty any more, unless it is the heap's only segment of
 * its kind: its pages stay resident while they may be reused soon. */
static void segment_release_if_idle(zp_heap *heap, zp_segment *seg) {
    unsigned kind = seg->kind;
    if (seg->used_pages != 0 ||
        (heap->segments[kind].first == seg && heap->segments[kind].last == seg))
        return;
    for (unsigned i = 0; i < seg->npages; i++)
        if (seg->pages[i].dirty) return;
    segq_remove(&heap->segments[kind], seg);
    segment_release(seg);
}

/* Decommit the dirty page pg (of dirty list k). */
static void purge_page(zp_heap *heap, unsigned k, zp_page *pg) {
    zp_segment *seg = (zp_segment *)((uintptr_t)pg & ~(uintptr_t)ZP_SEG_MASK);
    zp_pageq_remove(&heap->dirty[k], pg);
    heap->dirty_bytes -= page_touched(pg);
    decommit_page(seg, pg);
    segment_release_if_idle(heap, seg);
}

/* Decommit the pages that stayed free for older_than_ms. The timer (a
 * non-zero age) leaves the newest ZP_DIRTY_RESERVE bytes alone: a heap that
 * frees and reallocates a little memory in turn keeps it resident rather
 * than paying madvise and a page fault per 4 KiB each time. An age of 0
 * (zm_be_purge, thread exit) purges everything. */
void zp_heap_purge_dirty(zp_heap *heap, uint64_t older_than_ms) {
    uint64_t now = zp_clock_ms();
    size_t keep = older_than_ms ? ZP_DIRTY_RESERVE : 0;
    huge_cache_expire_aged();
    for (unsigned k = 0; k < ZP_KINDS; k++) {
        zp_page *pg;
        while ((pg = heap->dirty[k].last) != NULL && now - pg->free_since >= older_than_ms &&
               (heap->dirty_bytes > keep || !older_than_ms))
            purge_page(heap, k, pg);
    }
    heap->last_purge_ms = now;
}

/* Purge the oldest dirty pages until the heap holds at most `keep` bytes. */
static void purge_to(zp_heap *heap, size_t keep) {
    for (unsigned k = 0; heap->dirty_bytes > keep; k = (k + 1) % ZP_KINDS) {
        zp_page *pg = heap->dirty[k].last;
        if (pg) purge_page(heap, k, pg);
    }
}

void zp_segment_page_free(zp_heap *heap, zp_page *page) {
    zp_segment *seg = (zp_segment *)((uintptr_t)page & ~(uintptr_t)ZP_SEG_MASK);
    unsigned kind = seg->kind;
    int was_full = seg->free_mask == 0;
    page_mark_free(seg, page);
    if (was_full && heap->segments[kind].first != seg) {
        segq_remove(&heap->segments[kind], seg);
        segq_push_front(&heap->segments[kind], seg);
    }
    uint64_t now = zp_clock_ms();
    page->dirty = 1;
    page->free_since = now;
    zp_pageq_push_front(&heap->dirty[kind], page);
    heap->dirty_bytes += page_touched(page);
    /* An empty segment stays with the heap until its dirty pages are
     * purged (segment_release_if_idle), so an oscillating workload neither
     * faults them in again nor pays a madvise per page each time. */
    if (heap->dirty_bytes > ZP_DIRTY_MAX)
        purge_to(heap, ZP_DIRTY_MAX / 2);
    else if (now - heap->last_purge_ms >= ZP_PURGE_INTERVAL_MS)
        zp_heap_purge_dirty(heap, ZP_DIRTY_AGE_MS);
}

/* Thread exit: every page still in use was already detached from the heap
 * (xheap NULL). Segments with live pages are abandoned, others released. */
void zp_segments_abandon(zp_heap *heap) {
    zp_heap_purge_dirty(heap, 0);
    for (unsigned k = 0; k < ZP_KINDS; k++) {
        zp_segment *seg;
        while ((seg = heap->segments[k].first) != NULL) {
            segq_remove(&heap->segments[k], seg);
            if (seg->used_pages == 0) {
                segment_release(seg);
                continue;
            }
            seg->owner = NULL;
            zp_lock_acquire(&seg_lock);
            segq_push_back(&abandoned[k], seg);
            zp_lock_release(&seg_lock);
            zp_stat_add(&zp_stat.abandoned, 1);
        }
    }
}

/* Adopt one abandoned segment of `kind`: its live pages join heap's queues.
 * Returns 1 when a segment was adopted (it is then first in the heap's list
 * if it has free pages). */
int zp_segments_reclaim(zp_heap *heap, unsigned kind) {
    zp_lock_acquire(&seg_lock);
    zp_segment *seg = abandoned[kind].first;
    if (seg) segq_remove(&abandoned[kind], seg);
    zp_lock_release(&seg_lock);
    if (!seg) return 0;
    zp_stat_sub(&zp_stat.abandoned, 1);
    seg->owner = heap;
    for (unsigned i = 0; i < seg->npages; i++) {
        zp_page *pg = &seg->pages[i];
        if (pg->state == ZP_PAGE_FREE) continue;
        atomic_store_explicit(&pg->xheap, heap, memory_order_release);
        zp_page_collect(pg);
        if (pg->used == 0) {
            page_mark_free(seg, pg);
            decommit_page(seg, pg);
            continue;
        }
        pg->state = ZP_PAGE_QUEUED;
        zp_pageq_push_back(&heap->queues[pg->cls], pg);
        heap->direct[pg->cls] = heap->queues[pg->cls].first;
    }
    if (seg->free_mask)
        segq_push_front(&heap->segments[kind], seg);
    else
        segq_push_back(&heap->segments[kind], seg);
    return 1;
}

/* zm_be_purge: collect remote frees in abandoned segments, free what went
 * empty, and release wholly empty segments. */
void zp_segments_collect_abandoned(void) {
    for (unsigned k = 0; k < ZP_KINDS; k++) {
        zp_lock_acquire(&seg_lock);
        zp_segq list = abandoned[k];
        abandoned[k].first = abandoned[k].last = NULL;
        zp_lock_release(&seg_lock);
        zp_segment *seg, *next;
        for (seg = list.first; seg; seg = next) {
            next = seg->next;
            for (unsigned i = 0; i < seg->npages; i++) {
                zp_page *pg = &seg->pages[i];
                if (pg->state == ZP_PAGE_FREE) continue;
                zp_page_collect(pg);
                if (pg->used == 0) {
                    page_mark_free(seg, pg);
                    decommit_page(seg, pg);
                }
            }
            if (seg->used_pages == 0) {
                zp_stat_sub(&zp_stat.abandoned, 1);
                segment_release(seg);
            } else {
                zp_lock_acquire(&seg_lock);
                segq_push_back(&abandoned[k], seg);
                zp_lock_release(&seg_lock);
            }
        }
    }
}

void zp_segments_release_cache(void) {
    zp_lock_acquire(&seg_lock);
    zp_segment *seg;
    while ((seg = cache.first) != NULL) {
        segq_remove(&cache, seg);
        segment_retain_locked(seg);
    }
    cache_count = 0;
    zp_lock_release(&seg_lock);
}

/* ---- huge blocks ----------------------------------------------------------
 * One mapping: the header at a segment boundary H, the block at H + offset
 * (offset in (0, ZP_SEG_SIZE]), so masking (p - 1) finds the header.
 *
 * Freed huge mappings (without over-alignment) wait a while in a small cache
 * instead of being unmapped: a program that allocates and frees big buffers
 * in turn would otherwise pay a mmap, munmap and a page fault per 4 KiB each
 * time. The cache holds at most ZP_HUGE_CACHE_BYTES in mappings of up to
 * ZP_HUGE_CACHE_ENTRY_MAX. Entries older than ZP_HUGE_CACHE_AGE_MS are
 * unmapped on the next huge operation or periodic page-level purge check of
 * any heap (a freed Redis dict table must not linger), all of them on
 * zm_be_purge(). A reused mapping is trimmed to within 1/8 of the request;
 * one of at least half the request is grown with mremap (only the new tail
 * faults in, and it is already zero for calloc). */
#define ZP_HUGE_CACHE_SLOTS 32
#define ZP_HUGE_CACHE_BYTES ((size_t)32 << 20)
/* Bigger mappings are rare and costly to keep: a Redis dict table that was
 * just replaced by its resized copy should not linger in RSS. */
#define ZP_HUGE_CACHE_ENTRY_MAX (((size_t)4 << 20) + ZP_HDR_SIZE)

typedef struct huge_entry {
    zp_segment *seg;
    uint64_t since;
} huge_entry;
static huge_entry huge_cache[ZP_HUGE_CACHE_SLOTS];
static unsigned huge_cache_n;
static size_t huge_cache_bytes;
/* huge_cache_n as of the last change, readable without the lock. */
static _Atomic unsigned huge_cache_hint;
#define ZP_HUGE_CACHE_AGE_MS 250u

static void huge_unmap(zp_segment *seg, size_t total) {
    zp_stat_sub(&zp_stat.committed, total);
    zp_stat_sub(&zp_stat.mapped, total);
    zm_os_unmap(seg, total);
}

/* Under seg_lock: move entries older than max_age (all with 0) to out. */
static unsigned huge_cache_expire(uint64_t now, uint64_t max_age, zp_segment **out) {
    unsigned n = 0;
    for (unsigned i = 0; i < huge_cache_n;) {
        if (now - huge_cache[i].since >= max_age) {
            out[n++] = huge_cache[i].seg;
            huge_cache_bytes -= huge_cache[i].seg->map_size;
            huge_cache[i] = huge_cache[--huge_cache_n];
        } else {
            i++;
        }
    }
    return n;
}

static void huge_unmap_all(zp_segment **segs, unsigned n) {
    for (unsigned i = 0; i < n; i++) huge_unmap(segs[i], segs[i]->map_size);
}

/* A cached mapping of at least `need` bytes, trimmed; NULL if none. */
static zp_segment *huge_cache_take(size_t need, size_t *used) {
    zp_segment *expired[ZP_HUGE_CACHE_SLOTS], *seg = NULL;
    uint64_t now = zp_clock_ms();
    zp_lock_acquire(&seg_lock);
    unsigned nexp = huge_cache_expire(now, ZP_HUGE_CACHE_AGE_MS, expired);
    unsigned best = ZP_HUGE_CACHE_SLOTS, grow = ZP_HUGE_CACHE_SLOTS;
    for (unsigned i = 0; i < huge_cache_n; i++) {
        size_t m = huge_cache[i].seg->map_size;
        if (m >= need && (best == ZP_HUGE_CACHE_SLOTS || m < huge_cache[best].seg->map_size))
            best = i;
    }
    /* None big enough: the largest of at least half the request, grown
     * below (its pages stay; only the rest is faulted in). */
    for (unsigned i = 0; best == ZP_HUGE_CACHE_SLOTS && i < huge_cache_n; i++) {
        size_t m = huge_cache[i].seg->map_size;
        if (m >= need / 2 && (grow == ZP_HUGE_CACHE_SLOTS || m > huge_cache[grow].seg->map_size))
            grow = i;
    }
    if (best == ZP_HUGE_CACHE_SLOTS) best = grow;
    if (best != ZP_HUGE_CACHE_SLOTS) {
        seg = huge_cache[best].seg;
        huge_cache_bytes -= seg->map_size;
        huge_cache[best] = huge_cache[--huge_cache_n];
    }
    atomic_store_explicit(&huge_cache_hint, huge_cache_n, memory_order_relaxed);
    zp_lock_release(&seg_lock);
    huge_unmap_all(expired, nexp);
    if (seg && seg->map_size < need) {
        size_t m = seg->map_size;
        zp_segment *n = zm_os_remap(seg, m, need, NULL);
        if (!n) {
            void *dst = zm_os_map_aligned(need, ZP_SEG_SIZE);
            n = dst ? zm_os_remap(seg, m, need, dst) : NULL;
            if (!n) {
                if (dst) zm_os_unmap(dst, need);
                huge_unmap(seg, m);
                return NULL;
            }
        }
        seg = n;
        seg->map_size = need;
        *used = m; /* beyond it the pages are fresh: zero */
        zp_stat_add(&zp_stat.mapped, need - m);
        zp_stat_add(&zp_stat.committed, need - m);
        return seg;
    }
    if (seg && seg->map_size - need > need / 8) {
        zm_os_unmap((char *)seg + need, seg->map_size - need);
        zp_stat_sub(&zp_stat.committed, seg->map_size - need);
        zp_stat_sub(&zp_stat.mapped, seg->map_size - need);
        seg->map_size = need;
    }
    if (seg) *used = seg->map_size;
    return seg;
}

void *zp_huge_alloc(size_t size, size_t alignment, size_t *usable, int zero) {
    size_t os_page = zm_os_page_size();
    size_t offset = alignment <= ZP_HDR_SIZE ? ZP_HDR_SIZE : alignment;
    char *hdr, *user;
    size_t total, dirty = 0;
    int cached = 0;
    if (alignment <= ZP_SEG_SIZE) {
        if (size > SIZE_MAX / 2 - offset - os_page) goto oom;
        total = (offset + size + os_page - 1) & ~(os_page - 1);
        hdr = offset == ZP_HDR_SIZE ? (char *)huge_cache_take(total, &dirty) : NULL;
        if (hdr) {
            cached = 1;
            total = ((zp_segment *)hdr)->map_size;
        } else {
            hdr = zm_os_map_aligned(total, ZP_SEG_SIZE);
            if (!hdr) goto oom;
        }
        user = hdr + offset;
    } else {
        if (size > SIZE_MAX / 2 - alignment - os_page) goto oom;
        total = (alignment + size + os_page - 1) & ~(os_page - 1);
        char *base = zm_os_map_aligned(total, alignment);
        if (!base) goto oom;
        user = base + alignment;
        hdr = user - ZP_SEG_SIZE;
        zm_os_unmap(base, (size_t)(hdr - base));
        total -= (size_t)(hdr - base);
    }
    zp_segment *seg = (zp_segment *)hdr;
    seg->kind = ZP_KIND_HUGE;
    seg->page_shift = ZP_HUGE_PAGE_SHIFT;
    seg->npages = 1;
    seg->map_size = total;
    seg->huge_usable = total - (size_t)(user - hdr);
    seg->pages[0].block_size = 0;
    atomic_store_explicit(&seg->pages[0].xheap, NULL, memory_order_relaxed);
    atomic_store_explicit(&seg->pages[0].flags, 0, memory_order_relaxed);
    if (!cached) {
        zp_stat_add(&zp_stat.mapped, total);
        zp_stat_add(&zp_stat.committed, total);
    } else if (zero) {
        /* A fresh mapping is zero already; a cached one may be larger than
         * asked for, and calloc's caller may use all of the usable size. */
        memset(user, 0, dirty - ZP_HDR_SIZE); /* a grown tail is fresh */
    }
    zp_stat_add(&zp_stat.active, total);
    zp_stat_add(&zp_stat.huge_live, seg->huge_usable);
    zp_stat_add(&zp_stat.huge_count, 1);
    *usable = seg->huge_usable;
    return user;
oom:
    errno = ENOMEM;
    return NULL;
}

/* Resize a huge block to `size` usable bytes without copying: mremap in
 * place when the range after the mapping is free (or when shrinking), else
 * move its pages onto a fresh segment-aligned reservation (the start must
 * stay aligned, so the pointer-to-segment mask still finds the header).
 * Only plain mappings (block right after the header). NULL when it cannot:
 * the caller copies. The pages keep their state, so mapped, committed and
 * active move by the size difference; huge_live by the usable difference. */
void *zp_huge_remap(zp_segment *seg, void *p, size_t size, size_t *usable) {
    size_t os_page = zm_os_page_size();
    if ((char *)p - (char *)seg != (ptrdiff_t)ZP_HDR_SIZE || size > SIZE_MAX / 2) return NULL;
    size_t total = (ZP_HDR_SIZE + size + os_page - 1) & ~(os_page - 1);
    size_t old = seg->map_size, old_usable = seg->huge_usable;
    if (total == old) {
        *usable = old_usable;
        return p;
    }
    zp_segment *n = zm_os_remap(seg, old, total, NULL);
    if (!n) {
        void *dst = zm_os_map_aligned(total, ZP_SEG_SIZE);
        if (!dst) return NULL;
        n = zm_os_remap(seg, old, total, dst);
        if (!n) {
            zm_os_unmap(dst, total);
            return NULL;
        }
    }
    n->map_size = total;
    n->huge_usable = total - ZP_HDR_SIZE;
    if (total > old) {
        zp_stat_add(&zp_stat.mapped, total - old);
        zp_stat_add(&zp_stat.committed, total - old);
        zp_stat_add(&zp_stat.active, total - old);
        zp_stat_add(&zp_stat.huge_live, n->huge_usable - old_usable);
    } else {
        zp_stat_sub(&zp_stat.mapped, old - total);
        zp_stat_sub(&zp_stat.committed, old - total);
        zp_stat_sub(&zp_stat.active, old - total);
        zp_stat_sub(&zp_stat.huge_live, old_usable - n->huge_usable);
    }
    *usable = n->huge_usable;
    return (char *)n + ZP_HDR_SIZE;
}

void zp_huge_free(zp_segment *seg) {
    size_t total = seg->map_size;
    zp_stat_sub(&zp_stat.huge_live, seg->huge_usable);
    zp_stat_sub(&zp_stat.huge_count, 1);
    zp_stat_sub(&zp_stat.active, total);
    /* Only plain mappings (block right after the header) are cached. */
    if (seg->huge_usable + ZP_HDR_SIZE == total && total <= ZP_HUGE_CACHE_ENTRY_MAX) {
        zp_segment *expired[ZP_HUGE_CACHE_SLOTS + 1];
        uint64_t now = zp_clock_ms();
        zp_lock_acquire(&seg_lock);
        unsigned nexp = huge_cache_expire(now, ZP_HUGE_CACHE_AGE_MS, expired);
        /* Make room: evict the oldest until it fits. */
        while (huge_cache_n &&
               (huge_cache_n == ZP_HUGE_CACHE_SLOTS ||
                huge_cache_bytes + total > ZP_HUGE_CACHE_BYTES)) {
            unsigned old = 0;
            for (unsigned i = 1; i < huge_cache_n; i++)
                if (huge_cache[i].since < huge_cache[old].since) old = i;
            expired[nexp++] = huge_cache[old].seg;
            huge_cache_bytes -= huge_cache[old].seg->map_size;
            huge_cache[old] = huge_cache[--huge_cache_n];
        }
        huge_cache[huge_cache_n].seg = seg;
        huge_cache[huge_cache_n].since = now;
        huge_cache_n++;
        huge_cache_bytes += total;
        atomic_store_explicit(&huge_cache_hint, huge_cache_n, memory_order_relaxed);
        zp_lock_release(&seg_lock);
        huge_unmap_all(expired, nexp);
        return;
    }
    huge_unmap(seg, total);
}

static void huge_cache_drop(uint64_t max_age) {
    zp_segment *expired[ZP_HUGE_CACHE_SLOTS];
    zp_lock_acquire(&seg_lock);
    unsigned n = huge_cache_expire(max_age ? zp_clock_ms() : 0, max_age, expired);
    atomic_store_explicit(&huge_cache_hint, huge_cache_n, memory_order_relaxed);
    zp_lock_release(&seg_lock);
    huge_unmap_all(expired, n);
}

static void huge_cache_expire_aged(void) {
    if (atomic_load_explicit(&huge_cache_hint, memory_order_relaxed))
        huge_cache_drop(ZP_HUGE_CACHE_AGE_MS);
}

void zp_huge_cache_release(void) {
    huge_cache_drop(0);
}

void zp_segment_fork_prepare(void) {
    zp_lock_acquire(&seg_lock);
}

void zp_segment_fork_parent(void) {
    zp_lock_release(&seg_lock);
}

void zp_segment_fork_child(void) {
    atomic_flag_clear(&seg_lock.flag);
}
