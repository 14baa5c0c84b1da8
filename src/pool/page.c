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

#include "platform.h"
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

/* ---- cold blocks --------------------------------------------------------------
 * A page's touched memory is a high-water mark: carving only grows it, and
 * it goes back only when the whole page is free. Blocks of 8 KiB and more
 * (medium and large pages, 8 KiB small blocks) live few to a page, and a
 * heap's live count of one class wanders, so a page's carving climbs to
 * the most it ever held while it usually holds a third of that: the soak's
 * medium pages touched 83 MiB for 25 MiB live. The purge timer's sweep
 * (heap.c) therefore cools such pages: past the first `keep` bytes of the
 * free list (LIFO, so those are the blocks freed last, the likeliest to
 * be reused), each free block's interior, the whole OS pages after its link
 * word, is decommitted and the block moves to the page's cold list. The
 * fast paths never see cold blocks; the slow path warms one when the free
 * list is empty, before it would carve more, and committed follows both
 * ways (a warmed block is counted at once, as carving counts its blocks). */

/* A cold interior is neither resident nor usable without warming: it
 * leaves committed, and active and carved too (so active <= resident and
 * frag_smallbins stay true figures); d < 0 cools, d > 0 warms. */
static void cold_count(long d) {
    if (d < 0) {
        zp_stat_sub(&zp_stat.committed, (size_t)-d);
        zp_stat_sub(&zp_stat.active, (size_t)-d);
        zp_stat_sub(&zp_stat.carved, (size_t)-d);
    } else {
        zp_stat_add(&zp_stat.committed, (size_t)d);
        zp_stat_add(&zp_stat.active, (size_t)d);
        zp_stat_add(&zp_stat.carved, (size_t)d);
    }
}

static size_t block_interior(const zp_page *page, zp_block *b, char **lo) {
    size_t os = zm_os_page_size();
    uintptr_t l = ((uintptr_t)b + sizeof(zp_block) + os - 1) & ~(uintptr_t)(os - 1);
    uintptr_t h = ((uintptr_t)b + page->block_size) & ~(uintptr_t)(os - 1);
    *lo = (char *)l;
    return h > l ? (size_t)(h - l) : 0;
}

void zp_page_cool(zp_page *page, size_t keep) {
    if (page->block_size < 2 * zm_os_page_size()) return;
    zp_block **link = &page->free;
    for (size_t kept = 0; *link && kept < keep; kept += page->block_size) link = &(*link)->next;
    zp_block *b = *link;
    *link = NULL;
    while (b) {
        zp_block *next = b->next;
        char *lo;
        size_t len = block_interior(page, b, &lo);
        zm_os_decommit(lo, len);
        cold_count(-(long)len);
        page->cold_bytes += (uint32_t)len;
        page->cold_n++;
        b->next = page->cold;
        page->cold = b;
        b = next;
    }
}

void zp_page_refill(zp_page *page) {
    zp_block *b = page->cold;
    if (!b) {
        zp_page_extend(page);
        return;
    }
    page->cold = b->next;
    page->cold_n--;
    char *lo;
    size_t len = block_interior(page, b, &lo);
    page->cold_bytes -= (uint32_t)len;
    cold_count((long)len);
    b->next = page->free;
    page->free = b;
}

void zp_page_drop_cold(zp_segment *seg, zp_page *page) {
    if (!page->cold) return;
    /* The page leaves use sparse: give back everything carving touched
     * now, rather than keep its warm remainder on the dirty list. */
    cold_count((long)page->cold_bytes);
    page->cold = NULL;
    page->cold_n = 0;
    page->cold_bytes = 0;
    zp_page_decommit(seg, page);
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

/* 1 when the page holds no block: nothing out, or every block out is on
 * the thread-free list. That list is then dropped, not walked: the page is
 * about to go free as a whole, and once every block is free no further
 * free can come. Keeps the state bits. */
int zp_page_collect_if_empty(zp_page *page) {
    uintptr_t tf = atomic_load_explicit(&page->xthread_free, memory_order_acquire);
    if ((uint32_t)(tf >> ZP_TF_PTR_BITS) != page->used) return 0;
    if (page->used == 0) return 1;
    while (!atomic_compare_exchange_weak_explicit(&page->xthread_free, &tf, tf & ZP_TF_MASK,
                                                  memory_order_acquire, memory_order_relaxed)) {
    }
    page->used = 0;
    return 1;
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
