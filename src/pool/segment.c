/* segment.c: 4 MiB segments and the pages inside them.
 *
 * A segment belongs to one heap (thread) and is split into pages of one
 * size: 64 KiB (small kind), 512 KiB (medium) or the whole segment (large).
 * This file hands pages out of segments and takes them back; when a page
 * that went free is given back to the OS is purge.c's policy.
 *
 * When a thread's heap is abandoned, its segments still holding live blocks
 * go on a global abandoned list; a thread that needs a page adopts one of
 * those before it maps a new segment, so thread churn reuses memory instead
 * of growing. Wholly free segments go to a small cache (pages decommitted,
 * header resident) or to the retained list (header decommitted too);
 * segments come from 64 MiB arenas and their address space is kept for
 * reuse, never unmapped one by one. The global lists are guarded by
 * seg_lock, taken only on these slow paths.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "platform.h"
#include "pool.h"

static zp_lock seg_lock;
static zp_segq abandoned[ZP_KINDS];
static zp_segq cache;
static size_t cache_count;

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
        pg->cold = NULL;
        pg->cold_n = pg->cold_bytes = 0;
        pg->next = pg->prev = NULL;
        atomic_store_explicit(&pg->xheap, 0, memory_order_relaxed);
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
        zp_segq_remove(&cache, seg);
        cache_count--;
        cached = 1;
    } else if (retained.first) {
        seg = retained.first;
        zp_segq_remove(&retained, seg);
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
    zp_segq_push_front(&heap->segments[kind], seg);
    return seg;
}

/* Under seg_lock: seg leaves use for the retained list. */
static void segment_retain_locked(zp_segment *seg) {
    zm_os_decommit(seg, ZP_HDR_SIZE);
    zp_stat_sub(&zp_stat.committed, ZP_HDR_SIZE);
    zp_stat_sub(&zp_stat.segments, 1);
    zp_segq_push_front(&retained, seg);
}

/* All pages of seg are free and clean: cache it, or retain it. */
static void segment_release(zp_segment *seg) {
    ZP_CHECK_SEGMENT(seg);
    zp_lock_acquire(&seg_lock);
    if (cache_count < zp_pol.segment_cache) {
        zp_segq_push_front(&cache, seg);
        cache_count++;
    } else {
        segment_retain_locked(seg);
    }
    zp_lock_release(&seg_lock);
}

/* An empty segment goes back (to the cache or the retained list) once none
 * of its pages is dirty any more, unless it is the heap's only segment of
 * its kind: its pages stay resident while they may be reused soon. */
void zp_segment_release_if_idle(zp_heap *heap, zp_segment *seg) {
    unsigned kind = seg->kind;
    if (seg->used_pages != 0 ||
        (heap->segments[kind].first == seg && heap->segments[kind].last == seg))
        return;
    for (unsigned i = 0; i < seg->npages; i++)
        if (seg->pages[i].dirty) return;
    zp_segq_remove(&heap->segments[kind], seg);
    segment_release(seg);
}

zp_page *zp_segment_page_alloc(zp_heap *heap, unsigned kind) {
    zp_heap_purge_tick(heap);
    zp_page *page = zp_heap_dirty_take(heap, kind);
    zp_segment *seg;
    if (page) {
        seg = zp_segment_of(page);
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
        zp_segq_remove(&heap->segments[kind], seg);
        zp_segq_push_back(&heap->segments[kind], seg);
    }
    return page;
}

/* Mark page free in its segment; stats only, no heap lists. */
static void page_mark_free(zp_segment *seg, zp_page *page) {
    atomic_fetch_sub_explicit(&zp_stat.class_pages[page->cls], 1, memory_order_relaxed);
    zp_stat_sub(&zp_stat.active, (size_t)page->capacity * page->block_size);
    zp_stat_sub(&zp_stat.carved, (size_t)page->capacity * page->block_size);
    zp_page_drop_cold(seg, page);
    page->state = ZP_PAGE_FREE;
    page->free = NULL;
    atomic_store_explicit(&page->xheap, 0, memory_order_relaxed);
    seg->free_mask |= (uint64_t)1 << page->index;
    seg->used_pages--;
}

void zp_segment_page_free(zp_heap *heap, zp_page *page) {
    zp_segment *seg = zp_segment_of(page);
    unsigned kind = seg->kind;
    int was_full = seg->free_mask == 0;
    page_mark_free(seg, page);
    if (was_full && heap->segments[kind].first != seg) {
        zp_segq_remove(&heap->segments[kind], seg);
        zp_segq_push_front(&heap->segments[kind], seg);
    }
    /* An empty segment stays with the heap until its dirty pages are
     * purged (zp_segment_release_if_idle), so an oscillating workload
     * neither faults them in again nor pays a madvise per page each time. */
    zp_heap_dirty_add(heap, page);
}

/* Thread exit: every page still in use was already detached from the heap
 * (xheap NULL). Segments with live pages are abandoned, others released. */
void zp_segments_abandon(zp_heap *heap) {
    zp_heap_purge_dirty(heap, 0);
    for (unsigned k = 0; k < ZP_KINDS; k++) {
        zp_segment *seg;
        while ((seg = heap->segments[k].first) != NULL) {
            zp_segq_remove(&heap->segments[k], seg);
            if (seg->used_pages == 0) {
                segment_release(seg);
                continue;
            }
            ZP_CHECK_SEGMENT(seg);
            zp_lock_acquire(&seg_lock);
            zp_segq_push_back(&abandoned[k], seg);
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
    if (seg) zp_segq_remove(&abandoned[kind], seg);
    zp_lock_release(&seg_lock);
    if (!seg) return 0;
    zp_stat_sub(&zp_stat.abandoned, 1);
    ZP_CHECK_SEGMENT(seg);
    for (unsigned i = 0; i < seg->npages; i++) {
        zp_page *pg = &seg->pages[i];
        if (pg->state == ZP_PAGE_FREE) continue;
        zp_page_set_owner(pg, heap, 0);
        zp_page_collect(pg);
        if (pg->used == 0) {
            page_mark_free(seg, pg);
            zp_page_decommit(seg, pg);
            continue;
        }
        zp_pageq_push_back(&heap->queues[pg->cls], pg);
        zp_heap_set_direct(heap, pg->cls, heap->queues[pg->cls].first);
    }
    if (seg->free_mask)
        zp_segq_push_front(&heap->segments[kind], seg);
    else
        zp_segq_push_back(&heap->segments[kind], seg);
    ZP_CHECK_SEGMENT(seg);
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
                    zp_page_decommit(seg, pg);
                }
            }
            if (seg->used_pages == 0) {
                zp_stat_sub(&zp_stat.abandoned, 1);
                segment_release(seg);
            } else {
                zp_lock_acquire(&seg_lock);
                zp_segq_push_back(&abandoned[k], seg);
                zp_lock_release(&seg_lock);
            }
        }
    }
}

void zp_segments_release_cache(void) {
    zp_lock_acquire(&seg_lock);
    zp_segment *seg;
    while ((seg = cache.first) != NULL) {
        zp_segq_remove(&cache, seg);
        segment_retain_locked(seg);
    }
    cache_count = 0;
    zp_lock_release(&seg_lock);
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
