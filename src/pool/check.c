/* check.c: the checked build's invariant checks (ZMALLOC_POOL_CHECK).
 *
 * Compiled in by -DZMALLOC_POOL_CHECK=ON (on by itself in verification and
 * fuzz builds). The slow paths call ZP_CHECK_PAGE/SEGMENT/HEAP (pool.h) on
 * what they own; each check walks the structure and aborts with the first
 * broken invariant and where it was checked. Only the owner's view is
 * checked: remote freers change xthread_free at any time, so only its
 * count is compared with what the owner knows (it cannot exceed used).
 * Empty otherwise, so release builds pay nothing.
 */
#include "pool.h"

#ifdef ZMALLOC_POOL_CHECK
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static void fail(const char *where, const char *what, const void *obj) {
    char buf[256];
    int n = snprintf(buf, sizeof buf, "zmalloc pool check failed at %s: %s (%p)\n", where, what,
                     obj);
    if (n > 0) (void)write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    abort();
}
#define REQUIRE(cond, what, obj) \
    do {                         \
        if (!(cond)) fail(where, what, obj); \
    } while (0)

void zp_check_page(const zp_page *page, const char *where) {
    const zp_segment *seg = zp_segment_of(page);
    int free_bit = (seg->free_mask >> page->index) & 1;
    if (page->state == ZP_PAGE_FREE) {
        REQUIRE(free_bit, "free page not in its segment's free mask", page);
        REQUIRE(page->cold == NULL && page->cold_bytes == 0, "free page has cold blocks", page);
        return;
    }
    REQUIRE(page->state == ZP_PAGE_IN_USE, "page state neither free nor in use", page);
    REQUIRE(!free_bit, "page in use but in its segment's free mask", page);
    REQUIRE(page->capacity <= page->reserved, "page carved more blocks than fit", page);
    REQUIRE(page->used <= page->capacity, "page has more blocks out than carved", page);
    REQUIRE(page->block_size == zp_class_size(page->cls), "page block size is not its class's",
            page);
    REQUIRE(page->rcls == page->cls && page->rblock_size == page->block_size,
            "page's remote copies of class and size disagree", page);
    uint32_t n = 0;
    const char *lo = page->start, *hi = page->start + (size_t)page->capacity * page->block_size;
    for (const zp_block *b = page->free; b; b = b->next) {
        REQUIRE(n < page->capacity, "free list longer than the carved blocks (a cycle?)", page);
        REQUIRE((const char *)b >= lo && (const char *)b < hi &&
                    ((size_t)((const char *)b - lo) % page->block_size) == 0,
                "free-list block outside the page's carved blocks or misaligned", page);
        n++;
    }
    uint32_t nc = 0;
    for (const zp_block *b = page->cold; b; b = b->next) {
        REQUIRE(nc < page->capacity, "cold list longer than the carved blocks (a cycle?)", page);
        REQUIRE((const char *)b >= lo && (const char *)b < hi &&
                    ((size_t)((const char *)b - lo) % page->block_size) == 0,
                "cold-list block outside the page's carved blocks or misaligned", page);
        nc++;
    }
    REQUIRE(nc == page->cold_n && (nc == 0) == (page->cold_bytes == 0),
            "cold list length or bytes disagree with its counts", page);
    REQUIRE(n + nc + page->used == page->capacity,
            "free list length + cold blocks + used != capacity", page);
    uintptr_t tf = atomic_load_explicit(&page->xthread_free, memory_order_acquire);
    REQUIRE((uint32_t)(tf >> ZP_TF_PTR_BITS) <= page->used,
            "thread-free list counts more blocks than are out", page);
}

void zp_check_segment(const zp_segment *seg, const char *where) {
    REQUIRE(seg->kind < ZP_KINDS, "segment kind is not a page kind", seg);
    REQUIRE(seg->npages == (ZP_SEG_SIZE >> seg->page_shift), "segment page count wrong", seg);
    unsigned used = 0;
    for (unsigned i = 0; i < seg->npages; i++) {
        const zp_page *pg = &seg->pages[i];
        REQUIRE(pg->index == i, "page index does not match its slot", pg);
        int free_bit = (seg->free_mask >> i) & 1;
        REQUIRE(free_bit == (pg->state == ZP_PAGE_FREE), "free mask and page state disagree", pg);
        if (!free_bit) used++;
    }
    if (seg->npages < 64)
        REQUIRE((seg->free_mask >> seg->npages) == 0, "free mask has bits past the last page",
                seg);
    REQUIRE(used == seg->used_pages, "used_pages does not match the free mask", seg);
}

static size_t check_queue(const zp_heap *heap, const zp_pageq *q, int want_full, int want_cls,
                          const char *where) {
    const zp_page *prev = NULL;
    size_t n = 0;
    for (const zp_page *pg = q->first; pg; prev = pg, pg = pg->next, n++) {
        REQUIRE(pg->prev == prev, "page queue back link broken", pg);
        REQUIRE(pg->state == ZP_PAGE_IN_USE, "queued page is not in use", pg);
        REQUIRE(zp_page_owner(pg, memory_order_relaxed) == heap,
                "queued page owned by another heap", pg);
        REQUIRE(zp_page_in_full(pg) == !!want_full,
                "page's full bit disagrees with the list it is on", pg);
        if (want_cls >= 0) REQUIRE(pg->cls == (unsigned)want_cls, "page in another class's queue", pg);
        zp_check_page(pg, where);
    }
    REQUIRE(q->last == prev, "page queue last pointer wrong", q);
    return n;
}

size_t zp_check_heap(const zp_heap *heap, const char *where) {
    size_t pages = 0;
    for (unsigned c = 0; c < ZP_NCLASSES; c++) {
        pages += check_queue(heap, &heap->queues[c], 0, (int)c, where);
        const zp_page *d = heap->direct[c];
        REQUIRE(heap->queues[c].first ? d == heap->queues[c].first : d->free == NULL,
                "direct page is not the first of its queue", d);
    }
    pages += check_queue(heap, &heap->full, 1, -1, where);
    size_t dirty = 0;
    for (unsigned k = 0; k < ZP_KINDS; k++) {
        const zp_page *prev = NULL;
        for (const zp_page *pg = heap->dirty[k].first; pg; prev = pg, pg = pg->next) {
            REQUIRE(pg->prev == prev, "dirty list back link broken", pg);
            REQUIRE(pg->state == ZP_PAGE_FREE && pg->dirty, "dirty-list page not free and dirty",
                    pg);
            REQUIRE(zp_segment_of(pg)->kind == k, "page on another kind's dirty list", pg);
            dirty += zp_page_touched(pg);
        }
        for (const zp_segment *s = heap->segments[k].first; s; s = s->next) {
            REQUIRE(s->kind == k, "segment on another kind's list", s);
            zp_check_segment(s, where);
        }
    }
    REQUIRE(dirty == heap->dirty_bytes, "dirty_bytes does not match the dirty lists", heap);
    return pages;
}

void zp_check_slow_path(zp_heap *heap, const zp_page *page, const char *where) {
#ifdef ZMALLOC_POOL_CHECK_AMORTIZED
    if (page) zp_check_page(page, where);
    if (heap->check_countdown > 1) {
        heap->check_countdown--;
        return;
    }
    heap->check_countdown = zp_check_heap(heap, where);
#else
    (void)page;
    (void)zp_check_heap(heap, where);
#endif
}
#endif
