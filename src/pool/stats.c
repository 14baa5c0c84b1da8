/* stats.c: the pool's statistics, from counters it keeps anyway.
 *
 * Blocks in use are counted per class by each heap (a plain add on the
 * fast path, in memory the heap already touches) and summed here, plus what
 * exited threads folded in and what heapless threads freed. Page, segment
 * and huge figures are process-wide atomics updated on slow paths only.
 * Reading costs one pass over the live heaps; nothing walks pages.
 *
 *   allocated       usable bytes of live blocks (class size x blocks + huge)
 *   active          bytes of blocks carved in pages in use (a page is carved
 *                   lazily, so this is what it can have touched), plus huge
 *                   mappings, minus the calling thread's empty current
 *                   pages: a heap keeps the page of a class when its last
 *                   block goes (the next allocation wants one), but it
 *                   holds nothing live, like jemalloc's dirty pages, which
 *                   are resident and not active. The servers' active
 *                   defragmenter (Redis <= 7.4, Valkey 8.0) reads active
 *                   minus allocated as what it has to win: such pages
 *                   would stay in that figure whatever it moves.
 *   resident        what pages touched since their last decommit (4 KiB
 *                   steps, in use or dirty) + segment headers + metadata
 *                   (+ huge mappings; never-carved page parts not counted)
 *   retained        address space held but decommitted or never touched
 *   muzzy           0: pages are released with MADV_DONTNEED, never lazily
 *   frag_smallbins  free carved blocks in partly used class pages (carved
 *                   minus the class part of allocated, minus the free
 *                   carved blocks of the calling thread's current pages,
 *                   which its next allocations take first: defrag.c):
 *                   what moving blocks out of sparse pages can win. Huge
 *                   blocks' header and rounding are not in it (they are in
 *                   active).
 */
#include <stdio.h>

#include "pool.h"

typedef struct class_sums {
    long live[ZP_NCLASSES];
} class_sums;

static void add_heap(zp_heap *heap, void *arg) {
    class_sums *s = arg;
    for (unsigned c = 0; c < ZP_NCLASSES; c++)
        s->live[c] += atomic_load_explicit(&heap->live[c], memory_order_relaxed);
}

static void sum_classes(class_sums *s) {
    for (unsigned c = 0; c < ZP_NCLASSES; c++)
        s->live[c] = atomic_load_explicit(&zp_stat.class_live_dead[c], memory_order_relaxed) +
                     atomic_load_explicit(&zp_stat.remote_live[c], memory_order_relaxed);
    zp_heap_registry_each(add_heap, s);
    /* Not clamped: a block freed remotely is subtracted in the freer's heap
     * while its allocation is counted in the owner's, so while threads run
     * one class may read briefly off (even below 0); the sum is exact at
     * quiet moments. */
}

static size_t class_page_bytes(unsigned c) {
    unsigned kind = zp_kind_of_size(zp_class_size(c));
    return kind == ZP_KIND_SMALL    ? (size_t)1 << ZP_SMALL_PAGE_SHIFT
           : kind == ZP_KIND_MEDIUM ? (size_t)1 << ZP_MEDIUM_PAGE_SHIFT
                                    : ZP_SEG_SIZE - ZP_HDR_SIZE;
}

static void fill(const class_sums *s, zp_front front, zp_stats *out) {
    size_t idle_carved = front.idle_carved;
    long long small = 0;
    for (unsigned c = 0; c < ZP_NCLASSES; c++)
        small += (long long)s->live[c] * (long long)zp_class_size(c);
    size_t huge_live = atomic_load_explicit(&zp_stat.huge_live, memory_order_relaxed);
    size_t active = atomic_load_explicit(&zp_stat.active, memory_order_relaxed);
    size_t committed = atomic_load_explicit(&zp_stat.committed, memory_order_relaxed);
    size_t mapped = atomic_load_explicit(&zp_stat.mapped, memory_order_relaxed);
    /* Each figure from its own counter, nothing forced into order: live
     * blocks are carved (allocated <= active) and carving touches what it
     * carves (active <= resident) by construction, and the tests check it
     * against the kernel's figures. */
    out->allocated = (small > 0 ? (size_t)small : 0) + huge_live;
    out->active = active - (idle_carved <= active ? idle_carved : 0); /* ours: in active */
    out->resident = committed;
    out->retained = mapped - committed; /* committed is part of mapped */
    out->muzzy = 0;
    /* Free carved blocks of partly used class pages (the free blocks of the
     * caller's current pages left out); 0 only if a read raced a remote free
     * (above). Huge blocks' header and rounding are in active, not here:
     * nothing a defragmenter could win. */
    long long carved = (long long)(atomic_load_explicit(&zp_stat.carved, memory_order_relaxed) -
                                   front.free_carved);
    out->frag_smallbins = carved > small ? (size_t)(carved - small) : 0;
}

void zp_stats_get(zp_stats *out) {
    zp_rbatch_flush_if(zp_tl_heap);
    class_sums s;
    sum_classes(&s);
    fill(&s, zp_defrag_front(zp_tl_heap), out);
}

void zp_stats_print(FILE *out, int json) {
    zp_rbatch_flush_if(zp_tl_heap);
    class_sums s;
    sum_classes(&s);
    zp_stats st;
    fill(&s, zp_defrag_front(zp_tl_heap), &st);
    size_t segments = atomic_load_explicit(&zp_stat.segments, memory_order_relaxed);
    size_t abandoned = atomic_load_explicit(&zp_stat.abandoned, memory_order_relaxed);
    size_t huge_count = atomic_load_explicit(&zp_stat.huge_count, memory_order_relaxed);
    size_t huge_live = atomic_load_explicit(&zp_stat.huge_live, memory_order_relaxed);
    if (json) {
        fprintf(out,
                "{\"backend\":\"pool\",\"allocated\":%zu,\"active\":%zu,\"resident\":%zu,"
                "\"retained\":%zu,\"muzzy\":%zu,\"frag_smallbins\":%zu,\"segments\":%zu,"
                "\"abandoned_segments\":%zu,\"huge\":{\"blocks\":%zu,\"bytes\":%zu},"
                "\"classes\":[",
                st.allocated, st.active, st.resident, st.retained, st.muzzy,
                st.frag_smallbins, segments, abandoned, huge_count, huge_live);
        int first = 1;
        for (unsigned c = 0; c < ZP_NCLASSES; c++) {
            long pages = atomic_load_explicit(&zp_stat.class_pages[c], memory_order_relaxed);
            if (pages <= 0 && s.live[c] == 0) continue;
            size_t held = (size_t)(pages > 0 ? pages : 0) * class_page_bytes(c);
            size_t used = (size_t)(s.live[c] > 0 ? s.live[c] : 0) * zp_class_size(c);
            fprintf(out, "%s{\"size\":%zu,\"blocks\":%ld,\"pages\":%ld,\"waste\":%zu}",
                    first ? "" : ",", zp_class_size(c), s.live[c], pages,
                    held > used ? held - used : 0);
            first = 0;
        }
        fprintf(out, "]}\n");
        return;
    }
    fprintf(out,
            "pool allocator\n"
            "  allocated %zu  active %zu  resident %zu  retained %zu  muzzy %zu\n"
            "  frag_smallbins %zu  segments %zu (abandoned %zu)  huge blocks %zu (%zu bytes)\n"
            "  %10s %12s %8s %14s\n",
            st.allocated, st.active, st.resident, st.retained, st.muzzy, st.frag_smallbins,
            segments, abandoned, huge_count, huge_live, "class", "blocks", "pages", "waste");
    for (unsigned c = 0; c < ZP_NCLASSES; c++) {
        long pages = atomic_load_explicit(&zp_stat.class_pages[c], memory_order_relaxed);
        if (pages <= 0 && s.live[c] == 0) continue;
        size_t held = (size_t)(pages > 0 ? pages : 0) * class_page_bytes(c);
        size_t used = (size_t)(s.live[c] > 0 ? s.live[c] : 0) * zp_class_size(c);
        fprintf(out, "  %10zu %12ld %8ld %14zu\n", zp_class_size(c), s.live[c], pages,
                held > used ? held - used : 0);
    }
}
