/* page.c: one page of one size class: carving, collecting, remote frees.
 *
 * A page hands out blocks from `free`, owned by one thread. Blocks are
 * carved lazily, a few KiB at a time, so a fresh page costs RSS only for what
 * is used. Other threads never touch `free`: they push onto `xthread_free`
 * with a compare-and-swap, and the owner takes the whole list with one
 * exchange when its own list runs dry. A page on its heap's full list is not
 * looked at by the owner, so the first remote free into it instead goes to
 * the heap's `xdelayed` list, which the owner drains in its slow path; the
 * two state bits in xthread_free arbitrate that hand-off. Freeing threads
 * batch: blocks of one page are chained in the freer's heap and pushed as
 * one chain (see "the remote-free batch" below), and xthread_free counts
 * the blocks on its list above the pointer, so collecting walks nothing.
 */
#include <sched.h>

#include "pool.h"


void zp_page_init(zp_heap *heap, zp_segment *seg, zp_page *page, unsigned cls) {
    size_t bs = zp_class_size(cls);
    size_t page_size = (size_t)1 << seg->page_shift;
    if (seg->npages == 1) page_size = ZP_SEG_SIZE;
    size_t offset = page->index ? (size_t)page->index << seg->page_shift : ZP_HDR_SIZE;
    size_t area = page->index ? page_size : page_size - ZP_HDR_SIZE;
    page->start = (char *)seg + offset;
    page->free = NULL;
    page->used = 0;
    page->capacity = 0;
    page->reserved = (uint32_t)(area / bs);
    page->block_size = (uint32_t)bs;
    page->cls = (uint8_t)cls;
    page->rcls = (uint8_t)cls;
    page->rblock_size = (uint32_t)bs;
    page->state = ZP_PAGE_IN_USE;
    page->next = page->prev = NULL;
    atomic_store_explicit(&page->xthread_free, 0, memory_order_relaxed);
    zp_page_set_owner(page, heap, 0);
}

void zp_page_extend(zp_page *page) {
    /* zp_pol.carve_bytes (4 KiB, one OS page) a time keeps RSS close to
     * use, and the list building is amortised over many allocations. */
    uint32_t n = zp_pol.carve_bytes / page->block_size;
    if (n == 0) n = 1;
    if (n > page->reserved - page->capacity) n = page->reserved - page->capacity;
    if (n == 0) return;
    size_t bs = page->block_size;
    char *first = page->start + (size_t)page->capacity * bs;
    char *p = first;
    for (uint32_t i = 1; i < n; i++, p += bs) ((zp_block *)p)->next = (zp_block *)(p + bs);
    ((zp_block *)p)->next = page->free;
    page->free = (zp_block *)first;
    page->capacity += n;
    /* "active" counts carved blocks: what a page can have made resident. */
    zp_stat_add(&zp_stat.active, (size_t)n * bs);
    zp_stat_add(&zp_stat.carved, (size_t)n * bs);
    /* Pages of the area touched since the last decommit: committed grows
     * only when carving passes the high-water mark. */
    size_t extent = ((size_t)page->capacity * bs + ((size_t)1 << ZP_TOUCH_SHIFT) - 1) >>
                    ZP_TOUCH_SHIFT;
    if (extent > page->touched) {
        zp_stat_add(&zp_stat.committed, (extent - page->touched) << ZP_TOUCH_SHIFT);
        page->touched = (uint16_t)extent;
    }
}

/* Move the remote frees onto the local list. Keeps the state bits. */
void zp_page_collect(zp_page *page) {
    uintptr_t tf = atomic_load_explicit(&page->xthread_free, memory_order_relaxed);
    if ((tf & ~(uintptr_t)ZP_TF_MASK) == 0) return;
    while (!atomic_compare_exchange_weak_explicit(&page->xthread_free, &tf, tf & ZP_TF_MASK,
                                                  memory_order_acquire, memory_order_relaxed)) {
    }
    zp_block *head = (zp_block *)zp_tf_ptr(tf);
    uint32_t n = (uint32_t)(tf >> ZP_TF_PTR_BITS);
    if (page->free) { /* usually empty: then no block is walked */
        zp_block *tail = head;
        while (tail->next) tail = tail->next;
        tail->next = page->free;
    }
    page->free = head;
    page->used -= n;
}

/* Free from a thread that does not own the page: push the chain
 * head -> ... -> tail (linked by next; tail's next is overwritten) with one
 * CAS in the common case. A single block is a chain of one. Lock-free. */
void zp_free_remote(zp_page *page, zp_block *head, zp_block *tail, uintptr_t n) {
    uintptr_t tf = atomic_load_explicit(&page->xthread_free, memory_order_relaxed);
    for (;;) {
        if ((tf & ZP_TF_MASK) == ZP_TF_NOTIFY) {
            /* Claim the right to notify; other freers push meanwhile. */
            uintptr_t claimed = (tf & ~(uintptr_t)ZP_TF_MASK) | ZP_TF_NOTIFYING;
            if (!atomic_compare_exchange_weak_explicit(&page->xthread_free, &tf, claimed,
                                                       memory_order_acq_rel,
                                                       memory_order_relaxed))
                continue;
            /* The owner cannot leave while NOTIFYING is set (abandon waits),
             * so the heap read here stays valid until the state is reset. */
            zp_heap *heap = zp_page_owner(page, memory_order_acquire);
            if (heap) {
                zp_block *d = atomic_load_explicit(&heap->xdelayed, memory_order_relaxed);
                do {
                    tail->next = d;
                } while (!atomic_compare_exchange_weak_explicit(
                    &heap->xdelayed, &d, head, memory_order_release, memory_order_relaxed));
            }
            tf = atomic_load_explicit(&page->xthread_free, memory_order_relaxed);
            while (!atomic_compare_exchange_weak_explicit(
                &page->xthread_free, &tf, (tf & ~(uintptr_t)ZP_TF_MASK) | ZP_TF_NONE,
                memory_order_release, memory_order_relaxed)) {
            }
            if (heap) return;
            tf = atomic_load_explicit(&page->xthread_free, memory_order_relaxed);
            continue;
        }
        tail->next = (zp_block *)zp_tf_ptr(tf);
        uintptr_t count = (tf & ~(ZP_TF_COUNT_ONE - 1)) + n * ZP_TF_COUNT_ONE;
        if (atomic_compare_exchange_weak_explicit(&page->xthread_free, &tf,
                                                  (uintptr_t)head | count | (tf & ZP_TF_MASK),
                                                  memory_order_release, memory_order_relaxed))
            return;
    }
}

/* ---- the remote-free batch of a thread --------------------------------------
 * Per class, consecutive remote frees into one page are chained locally and
 * pushed with one CAS: when a free into another page of the class comes,
 * when the chain reaches ZP_RB_MAX blocks, or when the thread holds
 * ZP_RB_BYTES in all its chains. Blocks above ZP_SMALL_MAX are not held. */

static void rb_flush_slot(zp_heap *heap, unsigned cls) {
    zp_rbatch *rb = &heap->rb[cls];
    zp_page *page = rb->page;
    zp_block *head = rb->head, *tail = rb->tail;
    uintptr_t n = rb->n;
    heap->rb_bytes -= (size_t)rb->n * page->rblock_size;
    rb->page = NULL;
    rb->head = rb->tail = NULL;
    rb->n = 0;
    heap->rb_mask[cls >> 6] &= ~((uint64_t)1 << (cls & 63));
    zp_free_remote(page, head, tail, n);
}

void zp_rbatch_flush(zp_heap *heap) {
    for (unsigned w = 0; w < 2; w++) {
        while (heap->rb_mask[w]) {
            unsigned cls = w * 64u + (unsigned)__builtin_ctzll(heap->rb_mask[w]);
            rb_flush_slot(heap, cls);
        }
    }
}

void zp_rbatch_add(zp_heap *heap, zp_page *page, zp_block *b) {
    unsigned cls = page->rcls;
    zp_rbatch *rb = &heap->rb[cls];
    if (rb->page != page) {
        if (rb->page) rb_flush_slot(heap, cls);
        rb->page = page;
        rb->tail = b;
        heap->rb_mask[cls >> 6] |= (uint64_t)1 << (cls & 63);
    }
    b->next = rb->head;
    rb->head = b;
    rb->n++;
    heap->rb_bytes += page->rblock_size;
    if (rb->n >= ZP_RB_MAX)
        rb_flush_slot(heap, cls);
    else if (heap->rb_bytes >= ZP_RB_BYTES)
        zp_rbatch_flush(heap);
}
