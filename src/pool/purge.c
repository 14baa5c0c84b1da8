/* purge.c: when free pages go back to the OS, and the pool's policy values.
 *
 * A page that goes empty is not decommitted at once: it joins its heap's
 * dirty list (newest first, with the time it went free) and stays resident,
 * so a workload that frees and allocates in turn neither faults pages in
 * again nor pays a madvise per page each time. Dirty pages are decommitted
 * (MADV_DONTNEED, only the part carving touched):
 *   - by the timer, once they have been free for dirty_age_ms, checked at
 *     most every purge_interval_ms in the heap's slow paths, except the
 *     newest dirty_reserve bytes of each heap;
 *   - at once, oldest first down to half the cap, when a heap holds more
 *     than dirty_max dirty bytes;
 *   - all of them on zm_be_purge() (age 0) and when a heap is abandoned.
 * An empty segment goes back only once its dirty pages are purged. The
 * timer also expires the huge cache (huge.c).
 *
 * The policy values live in zp_pol, read once from the options table
 * (src/options.h, the pool_* rows; docs/options.md) by zp_policy_init()
 * when the first heap is made.
 */
#include "options.h"
#include "platform.h"
#include "pool.h"

zp_policy zp_pol;

static size_t option_size(zm_option_id id) {
    long long v = zm_option(id);
    return v > 0 ? (size_t)v : 0;
}

void zp_policy_init(void) {
    zp_pol.dirty_age_ms = option_size(ZM_OPT_POOL_DIRTY_AGE_MS);
    zp_pol.purge_interval_ms = option_size(ZM_OPT_POOL_PURGE_INTERVAL_MS);
    zp_pol.dirty_reserve = option_size(ZM_OPT_POOL_DIRTY_RESERVE);
    zp_pol.dirty_max = option_size(ZM_OPT_POOL_DIRTY_MAX);
    zp_pol.segment_cache = option_size(ZM_OPT_POOL_SEGMENT_CACHE);
    zp_pol.huge_cache_bytes = option_size(ZM_OPT_POOL_HUGE_CACHE);
    /* An entry is the whole mapping: the block and its header. */
    zp_pol.huge_cache_entry_max = option_size(ZM_OPT_POOL_HUGE_CACHE_ENTRY_MAX) + ZP_HDR_SIZE;
    zp_pol.huge_cache_age_ms = option_size(ZM_OPT_POOL_HUGE_CACHE_AGE_MS);
    zp_pol.heap_park_max = option_size(ZM_OPT_POOL_HEAP_PARK_MAX);
    size_t carve = option_size(ZM_OPT_POOL_CARVE_BYTES);
    zp_pol.carve_bytes = (uint32_t)(carve < 16 ? 16 : carve > ZP_SEG_SIZE ? ZP_SEG_SIZE : carve);
}

/* Give back the part of page's area that carving touched; nothing to do
 * (no madvise) when it is 0. */
void zp_page_decommit(zp_segment *seg, zp_page *page) {
    if (page->touched) {
        zm_os_decommit((char *)seg + (page->index ? (size_t)page->index << seg->page_shift
                                                  : ZP_HDR_SIZE),
                       zp_page_touched(page));
        zp_stat_sub(&zp_stat.committed, zp_page_touched(page));
        page->touched = 0;
    }
    page->dirty = 0;
}

/* Decommit the dirty page pg (of dirty list k). */
static void purge_page(zp_heap *heap, unsigned k, zp_page *pg) {
    zp_segment *seg = zp_segment_of(pg);
    zp_pageq_remove(&heap->dirty[k], pg);
    heap->dirty_bytes -= zp_page_touched(pg);
    zp_page_decommit(seg, pg);
    zp_segment_release_if_idle(heap, seg);
}

/* Decommit the pages that stayed free for older_than_ms. The timer (a
 * non-zero age) leaves the newest dirty_reserve bytes alone: a heap that
 * frees and reallocates a little memory in turn keeps it resident rather
 * than paying madvise and a page fault per 4 KiB each time. An age of 0
 * (zm_be_purge, abandon) purges everything. */
void zp_heap_purge_dirty(zp_heap *heap, uint64_t older_than_ms) {
    uint64_t now = zm_os_clock_ms();
    size_t keep = older_than_ms ? zp_pol.dirty_reserve : 0;
    zp_huge_cache_expire_aged();
    for (unsigned k = 0; k < ZP_KINDS; k++) {
        zp_page *pg;
        while ((pg = heap->dirty[k].last) != NULL && now - pg->free_since >= older_than_ms &&
               (heap->dirty_bytes > keep || !older_than_ms))
            purge_page(heap, k, pg);
    }
    heap->last_purge_ms = now;
}

/* The timer, from a heap's malloc and page-allocation slow paths: the
 * sweep of its queues for pages emptied by remote frees (heap.c), its own
 * aged dirty pages, and the heaps of exited threads parked too long. */
void zp_heap_purge_tick(zp_heap *heap) {
    uint64_t now = zm_os_clock_ms();
    /* The sweep four times as often as the rest: remote frees flow at the
     * allocation rate, and what waits uncollected is that rate times the
     * wait (a short soak: 20 MiB of medium blocks at a 250 ms period). */
    if (now - heap->last_sweep_ms >= zp_pol.purge_interval_ms / 4) {
        heap->last_sweep_ms = now;
        zp_heap_sweep(heap);
    }
    if (now - heap->last_purge_ms >= zp_pol.purge_interval_ms) {
        zp_heap_purge_dirty(heap, zp_pol.dirty_age_ms);
        zp_heaps_expire_parked(0);
    }
}

/* Purge the oldest dirty pages until the heap holds at most `keep` bytes. */
void zp_heap_purge_to(zp_heap *heap, size_t keep) {
    for (unsigned k = 0; heap->dirty_bytes > keep; k = (k + 1) % ZP_KINDS) {
        zp_page *pg = heap->dirty[k].last;
        if (pg) purge_page(heap, k, pg);
    }
}

void zp_heap_dirty_add(zp_heap *heap, zp_page *page) {
    unsigned kind = zp_segment_of(page)->kind;
    uint64_t now = zm_os_clock_ms();
    page->dirty = 1;
    page->free_since = now;
    zp_pageq_push_front(&heap->dirty[kind], page);
    heap->dirty_bytes += zp_page_touched(page);
    if (heap->dirty_bytes > zp_pol.dirty_max)
        zp_heap_purge_to(heap, zp_pol.dirty_max / 2);
    else if (now - heap->last_purge_ms >= zp_pol.purge_interval_ms)
        zp_heap_purge_dirty(heap, zp_pol.dirty_age_ms);
}

/* The most recently freed dirty page of `kind` (the most likely still in
 * cache), off the dirty list; NULL when there is none. */
zp_page *zp_heap_dirty_take(zp_heap *heap, unsigned kind) {
    zp_page *page = heap->dirty[kind].first;
    if (!page) return NULL;
    zp_pageq_remove(&heap->dirty[kind], page);
    heap->dirty_bytes -= zp_page_touched(page);
    page->dirty = 0;
    return page;
}
