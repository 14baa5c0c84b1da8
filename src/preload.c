/* preload.c: malloc and friends for LD_PRELOAD (libzmalloc-preload.so).
 *
 * The library replaces glibc's allocator in any dynamically linked program:
 *   LD_PRELOAD=/usr/local/lib/libzmalloc-preload.so program args...
 * It is built from the pool build's sources (cmake/preload.cmake) and calls
 * the lower layer directly (layer.h: the pool backend, or the verification
 * layer over it in a ZMALLOC_DEBUG build), not the Redis front end: a
 * program's malloc needs none of zmalloc's limits, handlers or accounting,
 * and this way the fast path is the pool's own plus one predictable test.
 * Nothing here calls libc's malloc, and the pool needs no initialisation,
 * so calls that arrive while the dynamic loader is still relocating (before
 * any constructor ran), from dlsym's error buffers, from threads created by
 * any library and in fork children all work.
 *
 * Semantics are glibc's: errno = ENOMEM on failure; malloc(0) returns a
 * unique block; calloc overflow -> NULL, ENOMEM; realloc(p, 0) frees p and
 * returns NULL; free(NULL) does nothing; posix_memalign returns EINVAL for an
 * alignment that is not a power of two multiple of sizeof(void *) and ENOMEM
 * on failure, leaving *memptr alone; memalign rounds a non-power-of-two
 * alignment up, as glibc does; aligned_alloc rejects one with EINVAL (glibc
 * 2.38 and C17 DR 460); valloc/pvalloc align to the page, pvalloc rounds the
 * size up to whole pages. malloc_usable_size, malloc_trim (purges at once),
 * mallinfo/mallinfo2 (from the pool's own counters), mallopt (accepted and
 * ignored), malloc_stats and malloc_info are provided, as are glibc's
 * __libc_* aliases. C++ new/delete reach these through malloc/free.
 *
 * Options, the statistics they turn on (ZMALLOC_STATS, ZMALLOC_STATS_FILE)
 * and the exit report are in preload_stats.c; preload.h is the seam: one
 * load and one well-predicted branch per call when statistics are off.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layer.h"
#include "platform.h"
#include "preload.h"
#include "sample.h"

#define ZPL_EXPORT __attribute__((visibility("default")))
#define ZPL_MIN_ALIGN alignof(max_align_t)

/* ---------------------------------------------------------------------
 * The replaced functions
 * --------------------------------------------------------------------- */

/* malloc's alignment is glibc's 16 bytes for every size, but the pool's
 * 24-, 40- and 56-byte classes are only 8-aligned (pool/pool.h): requests up
 * to 64 bytes are rounded up to a multiple of 16 before they reach the
 * pool (and a 0-byte one to 16), so a program never gets one of those
 * blocks. Above 64 every class is a multiple of 16. The zmalloc API does
 * not round (zmalloc.h documents the 8-byte case, as Redis's jemalloc). */
static inline size_t zpl_request(size_t size) {
#if ZMALLOC_DEBUG_BUILD
    /* The verification layer keeps every block 16-aligned itself (debug.c)
     * and must see the exact size: its tail guard starts at the requested
     * end, so a one-byte overflow is caught. A 0-byte request asks for 1
     * (the layer's records cannot hold a 0 size; malloc(0) must still
     * return a distinct block). */
    return size + (size == 0);
#else
    return size <= 64 ? (size + 15 + (size == 0)) & ~(size_t)15 : size;
#endif
}

static inline size_t zpl_size_of(void *p) {
    return zm_lower_usable_size(p);
}

static __attribute__((noinline, cold)) void *zpl_enomem(void) {
    errno = ENOMEM;
    return NULL;
}

/* ---------------------------------------------------------------------
 * Sampled allocations (sample.h): heap profiler and guarded sampling
 * --------------------------------------------------------------------- */

enum { ZPL_OP_MALLOC, ZPL_OP_CALLOC, ZPL_OP_REALLOC, ZPL_OP_ALIGNED };

/* Free of a block the free filter flagged. */
static __attribute__((noinline, cold)) void zpl_free_sampled(void *ptr, void *ret, void *frame) {
    zm_prof_forget(ptr); /* a guarded block may be profiled too */
    if (zm_guard_owns(ptr)) {
        size_t size = zm_guard_size(ptr);
        zm_smp_stack st;
        zm_smp_capture(&st, ret, frame);
        if (ZPL_COUNTING()) zpl_count(size, 'f', -(int64_t)size);
        zm_guard_free(ptr, &st);
        return;
    }
    size_t usable = zpl_size_of(ptr);
    if (ZPL_COUNTING()) zpl_count(usable, 'f', -(int64_t)usable);
    zm_lower_free(ptr, usable);
}

static inline size_t zpl_block_size(void *ptr) {
    if (zm_smp_hit(ptr) && zm_guard_owns(ptr)) return zm_guard_size(ptr);
    return zpl_size_of(ptr);
}

/* The countdown ran out, or a realloc's block is flagged: as the front
 * end's allocate_sampled, with glibc's semantics. */
static __attribute__((noinline, cold)) void *zpl_alloc_sampled(int op, void *ptr, size_t size,
                                                               size_t alignment, void *ret,
                                                               void *frame) {
    if (ZM_TOO_BIG(size)) return zpl_enomem();
    zm_smp_decision d = {0, 0, 0};
    if (zm_smp_countdown < 0) zm_smp_decide(size, op != ZPL_OP_ALIGNED, &d);
    zm_smp_stack st = {.depth = 0};
    if (d.guard || d.profile) zm_smp_capture(&st, ret, frame);
    size_t want = zpl_request(size), usable = 0, old = 0;
    int old_sampled = op == ZPL_OP_REALLOC && zm_smp_hit(ptr);
    int old_guarded = old_sampled && zm_guard_owns(ptr);
    if (op == ZPL_OP_REALLOC) old = old_guarded ? zm_guard_size(ptr) : zpl_size_of(ptr);
    void *p = d.guard ? zm_guard_alloc(want, &st) : NULL;
    if (p) usable = want;
    if (op == ZPL_OP_REALLOC && (p || old_guarded)) {
        /* A move into or out of the guarded area: copy, free the old block. */
        if (!p) p = zm_lower_malloc(want, &usable);
        if (!p) return zpl_enomem();
        memcpy(p, ptr, old < usable ? old : usable);
        if (old_sampled) zpl_free_sampled(ptr, ret, frame);
        else zm_lower_free(ptr, old);
        if (ZPL_COUNTING()) zpl_count(usable, 'r', (int64_t)usable - (int64_t)old);
    } else if (!p) {
        if (old_sampled) zm_prof_forget(ptr);
        switch (op) {
        case ZPL_OP_MALLOC: p = zm_lower_malloc(want, &usable); break;
        case ZPL_OP_CALLOC: p = zm_lower_calloc(want, &usable); break;
        case ZPL_OP_REALLOC: p = zm_lower_realloc(ptr, want, &usable); break;
        default: p = zm_lower_aligned_alloc(alignment, want, &usable); break;
        }
        if (!p) return zpl_enomem();
        if (ZPL_COUNTING()) {
            if (op == ZPL_OP_REALLOC) zpl_count(usable, 'r', (int64_t)usable - (int64_t)old);
            else zpl_count(usable, 'a', (int64_t)usable);
        }
    } else if (ZPL_COUNTING()) {
        zpl_count(usable, 'a', (int64_t)usable);
    }
    if (d.profile) zm_prof_record(p, want, d.weight, &st);
    return p;
}

/* Evaluated in the exported entry point the zpl_* function is inlined
 * into: the program's return address and frame. */
#define ZPL_SAMPLED(op, ptr, size, align) \
    zpl_alloc_sampled(op, ptr, size, align, __builtin_return_address(0), ZM_SMP_FRAME())

/* The work of each function, without ZM_NOTE_CALLER: the exported entry
 * points note their caller (the allocation site of a verification build)
 * once and then call these, so a realloc(NULL, n) or an aligned request is
 * charged to the program, not to this file. */
static __attribute__((noinline)) void *zpl_malloc_slow(size_t size) {
    size_t usable;
    if (zpl_unlikely(ZM_TOO_BIG(size))) return zpl_enomem();
    void *p = zm_lower_malloc(zpl_request(size), &usable);
    if (zpl_unlikely(!p)) return zpl_enomem();
    if (ZPL_COUNTING()) zpl_count(usable, 'a', (int64_t)usable);
    return p;
}

/* Fast path: the sampling countdown, then the pool's table-indexed pop (no
 * call, no stack frame; everything else is the tail-called slow path). No
 * mode word: until the options are read, and for good with statistics on,
 * every thread is held on the slow path (sample.h), which counts. */
static inline __attribute__((always_inline)) void *zpl_malloc(size_t size) {
    if (zm_smp_tick(size)) return ZPL_SAMPLED(ZPL_OP_MALLOC, NULL, size, 0);
#if ZM_LAYER_HAS_FAST
    size_t usable;
    /* Rounded to 16 (zpl_request; a size near SIZE_MAX wraps to slot 0,
     * the empty page, and goes to the slow path whole). */
    void *p = zm_lower_malloc_fast((size + 15) & ~(size_t)15, &usable);
    if (zpl_likely(p != NULL)) return p;
#endif
    return zpl_malloc_slow(size);
}

/* free tests no mode word: with statistics on, every byte of the free
 * filter is set (preload_stats.c, before the mode says so), so every free
 * takes zpl_free_sampled(), which counts. Before the options are read no
 * block exists to free: the first allocation reads them. The fast path is
 * a leaf with tail calls only (no stack frame, no saved registers). */
static inline __attribute__((always_inline)) void zpl_free(void *ptr) {
    if (zpl_unlikely(!ptr)) return;
    if (zm_smp_hit(ptr)) {
        zpl_free_sampled(ptr, __builtin_return_address(0), ZM_SMP_FRAME());
        return;
    }
#if ZMALLOC_DEBUG_BUILD
    /* The verification layer checks the size it is given. */
    zm_lower_free(ptr, zpl_size_of(ptr));
#else
    /* The pool's free needs no size (backend_pool.c). */
    zm_lower_free(ptr, ZM_USABLE_UNKNOWN);
#endif
}

static inline __attribute__((always_inline)) void *zpl_realloc(void *ptr, size_t size) {
    if (!ptr) return zpl_malloc(size);
    if (size == 0) {
        /* glibc (REALLOC_ZERO_BYTES_FREES): free and return NULL. */
        zpl_free(ptr);
        return NULL;
    }
    if (zpl_unlikely(ZM_TOO_BIG(size))) return zpl_enomem();
    if (zm_smp_tick(size) || zm_smp_hit(ptr)) return ZPL_SAMPLED(ZPL_OP_REALLOC, ptr, size, 0);
    size_t usable, old = 0;
    int counting = ZPL_COUNTING();
    if (counting) old = zpl_size_of(ptr);
    void *p = zm_lower_realloc(ptr, zpl_request(size), &usable);
    if (zpl_unlikely(!p)) return zpl_enomem();
    if (counting) zpl_count(usable, 'r', (int64_t)usable - (int64_t)old);
    return p;
}

/* alignment: a power of two. */
static inline __attribute__((always_inline)) void *zpl_aligned(size_t alignment, size_t size) {
    if (alignment <= ZPL_MIN_ALIGN) return zpl_malloc(size);
    if (zpl_unlikely(ZM_TOO_BIG(size))) return zpl_enomem();
    if (zm_smp_tick(size)) return ZPL_SAMPLED(ZPL_OP_ALIGNED, NULL, size, alignment);
    size_t usable;
    void *p = zm_lower_aligned_alloc(alignment, zpl_request(size), &usable);
    if (zpl_unlikely(!p)) return zpl_enomem();
    if (ZPL_COUNTING()) zpl_count(usable, 'a', (int64_t)usable);
    return p;
}

ZPL_EXPORT void *malloc(size_t size) {
    ZM_NOTE_CALLER();
    return zpl_malloc(size);
}

ZPL_EXPORT void free(void *ptr) {
    ZM_NOTE_CALLER();
    zpl_free(ptr);
}

ZPL_EXPORT void *calloc(size_t nmemb, size_t size) {
    ZM_NOTE_CALLER();
    size_t bytes, usable;
    if (zpl_unlikely(__builtin_mul_overflow(nmemb, size, &bytes) || ZM_TOO_BIG(bytes)))
        return zpl_enomem();
    if (zm_smp_tick(bytes)) return ZPL_SAMPLED(ZPL_OP_CALLOC, NULL, bytes, 0);
    void *p = zm_lower_calloc(zpl_request(bytes), &usable);
    if (zpl_unlikely(!p)) return zpl_enomem();
    if (ZPL_COUNTING()) zpl_count(usable, 'a', (int64_t)usable);
    return p;
}

ZPL_EXPORT void *realloc(void *ptr, size_t size) {
    ZM_NOTE_CALLER();
    return zpl_realloc(ptr, size);
}

ZPL_EXPORT void *reallocarray(void *ptr, size_t nmemb, size_t size) {
    ZM_NOTE_CALLER();
    size_t bytes;
    if (__builtin_mul_overflow(nmemb, size, &bytes)) return zpl_enomem();
    return zpl_realloc(ptr, bytes);
}

static inline int zpl_pow2(size_t x) {
    return x && (x & (x - 1)) == 0;
}

ZPL_EXPORT int posix_memalign(void **memptr, size_t alignment, size_t size) {
    ZM_NOTE_CALLER();
    if (alignment % sizeof(void *) != 0 || !zpl_pow2(alignment)) return EINVAL;
    int saved = errno;
    void *p = zpl_aligned(alignment, size);
    if (!p) {
        errno = saved;
        return ENOMEM;
    }
    *memptr = p;
    return 0;
}

ZPL_EXPORT void *aligned_alloc(size_t alignment, size_t size) {
    ZM_NOTE_CALLER();
    if (!zpl_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return zpl_aligned(alignment, size);
}

ZPL_EXPORT void *memalign(size_t alignment, size_t size) {
    ZM_NOTE_CALLER();
    /* glibc: more than half the address space is EINVAL, anything else not
     * a power of two is rounded up to one. */
    if (alignment > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (!zpl_pow2(alignment)) {
        size_t a = ZPL_MIN_ALIGN;
        while (a < alignment) a <<= 1;
        alignment = a;
    }
    return zpl_aligned(alignment, size);
}

ZPL_EXPORT void *valloc(size_t size) {
    ZM_NOTE_CALLER();
    return zpl_aligned(zm_os_page_size(), size);
}

ZPL_EXPORT void *pvalloc(size_t size) {
    ZM_NOTE_CALLER();
    size_t page = zm_os_page_size();
    if (size > SIZE_MAX - page) return zpl_enomem();
    size_t rounded = (size + page - 1) & ~(page - 1);
    return zpl_aligned(page, rounded ? rounded : page);
}

ZPL_EXPORT size_t malloc_usable_size(void *ptr) {
    return ptr ? zpl_block_size(ptr) : 0;
}

ZPL_EXPORT int malloc_trim(size_t pad) {
    (void)pad;
    return zm_be_purge() == 0;
}

ZPL_EXPORT struct mallinfo2 mallinfo2(void) {
    zm_be_stats st = {0};
    zm_be_get_stats(0, &st);
    struct mallinfo2 mi = {0};
    /* The glibc fields that mean something for a pool: arena = bytes in
     * pages in use, uordblks = bytes in live blocks, fordblks = free bytes
     * inside those pages, keepcost = bytes releasable now (dirty pages). */
    mi.arena = st.active;
    mi.ordblks = 1;
    mi.uordblks = st.allocated;
    mi.fordblks = st.active > st.allocated ? st.active - st.allocated : 0;
    mi.keepcost = st.resident > st.active ? st.resident - st.active : 0;
    return mi;
}

ZPL_EXPORT struct mallinfo mallinfo(void) {
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi = {0};
    mi.arena = (int)m2.arena;
    mi.ordblks = (int)m2.ordblks;
    mi.uordblks = (int)m2.uordblks;
    mi.fordblks = (int)m2.fordblks;
    mi.keepcost = (int)m2.keepcost;
    return mi;
}

ZPL_EXPORT int mallopt(int param, int value) {
    (void)param;
    (void)value;
    return 1;
}

ZPL_EXPORT void malloc_stats(void) {
    zm_be_print_stats(stderr, 0);
}

ZPL_EXPORT int malloc_info(int options, FILE *fp) {
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    zm_be_stats st = {0};
    zm_be_get_stats(0, &st);
    fprintf(fp,
            "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n</sizes>\n"
            "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
            "<total type=\"rest\" count=\"0\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n"
            "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n"
            "</heap>\n</malloc>\n",
            st.active - (st.allocated < st.active ? st.allocated : st.active), st.resident,
            st.resident, st.resident + st.retained, st.resident + st.retained);
    return 0;
}

/* glibc's internal names, which a few programs call directly. */
/* The aliases need not repeat the header's attributes of their targets. */
#pragma GCC diagnostic ignored "-Wmissing-attributes"
#define ZPL_ALIAS(f) __attribute__((alias(#f)))
ZPL_EXPORT void *__libc_malloc(size_t) __attribute__((alias("malloc")));
ZPL_EXPORT void __libc_free(void *) ZPL_ALIAS(free);
ZPL_EXPORT void *__libc_calloc(size_t, size_t) __attribute__((alias("calloc")));
ZPL_EXPORT void *__libc_realloc(void *, size_t) __attribute__((alias("realloc")));
ZPL_EXPORT void *__libc_memalign(size_t, size_t) __attribute__((alias("memalign")));
ZPL_EXPORT void *__libc_valloc(size_t) __attribute__((alias("valloc")));
ZPL_EXPORT void *__libc_pvalloc(size_t) __attribute__((alias("pvalloc")));
ZPL_EXPORT int __posix_memalign(void **, size_t, size_t) ZPL_ALIAS(posix_memalign);
