/* test_frontend_holes.c: guarantees of the front end that had holes.
 *
 *  - a reclaim handler that frees the block being reallocated: zrealloc
 *    and ztryrealloc return NULL with errno ECANCELED, the OOM handler is
 *    not called, the block is released once (accounting back to the
 *    baseline), nothing dangling is touched (include/zmalloc.h);
 *  - a reclaim handler that frees something else: the reallocation
 *    succeeds and keeps the data;
 *  - aligned blocks are charged what the block holds: on the size-prefix
 *    path size + max(alignment, 16), and zmalloc_size() agrees;
 *  - jemalloc's *_with_flags honour the memory limit and the reclaim
 *    handler and account like the rest;
 *  - the size guard: 0 bytes gets a block of at least sizeof(long),
 *    SIZE_MAX/2 and up fail with ENOMEM.
 */
#include <errno.h>
#include <stdint.h>

#include "test.h"
#include "zmalloc.h"

static int oom_calls;
static void counting_oom(size_t size) {
    (void)size;
    oom_calls++;
}

static void *victim;     /* what the handler frees */
static int handler_calls;
static size_t free_victim(size_t needed) {
    (void)needed;
    handler_calls++;
    if (!victim) return 0;
    size_t n = zmalloc_size(victim);
    zfree(victim);
    victim = NULL;
    return n;
}

static void test_reclaim_frees_the_block(int try_variant) {
    size_t base = zmalloc_used_memory();
    char *p = zmalloc(1000);
    memset(p, 'x', 1000);
    zmalloc_set_memory_limit(zmalloc_used_memory() + 4096);
    zmalloc_set_reclaim_handler(free_victim);
    zmalloc_set_oom_handler(counting_oom);
    victim = p;
    handler_calls = oom_calls = 0;
    errno = 0;
    void *q = try_variant ? ztryrealloc(p, 100000) : zrealloc(p, 100000);
    int err = errno;
    zmalloc_set_memory_limit(0);
    zmalloc_set_reclaim_handler(NULL);
    zmalloc_set_oom_handler(NULL);
    CHECK(q == NULL);
    CHECK_EQ_SIZE(err, ECANCELED);
    CHECK_EQ_SIZE(handler_calls, 1);
    CHECK_EQ_SIZE(oom_calls, 0);
    CHECK(victim == NULL);
    /* Released once, by the front end after the handler returned. */
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

static void test_reclaim_frees_another_block(void) {
    size_t base = zmalloc_used_memory();
    char *other = zmalloc(200000);
    char *p = zmalloc(1000);
    memset(p, 'y', 1000);
    zmalloc_set_memory_limit(zmalloc_used_memory() + 4096);
    zmalloc_set_reclaim_handler(free_victim);
    victim = other;
    handler_calls = 0;
    char *q = zrealloc(p, 100000);
    zmalloc_set_memory_limit(0);
    zmalloc_set_reclaim_handler(NULL);
    CHECK(q != NULL);
    CHECK(handler_calls >= 1);
    int same = 1;
    for (int i = 0; q && i < 1000; i++) same &= q[i] == 'y';
    CHECK(same);
    zfree(q);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

static void test_aligned_charge(void) {
    static const size_t aligns[] = {8, 16, 64, 256, 4096};
    for (unsigned i = 0; i < sizeof aligns / sizeof *aligns; i++) {
        size_t base = zmalloc_used_memory();
        void *p = zmalloc_aligned(aligns[i], 100);
        CHECK(p != NULL && ((uintptr_t)p & (aligns[i] - 1)) == 0);
        size_t charged = zmalloc_used_memory() - base;
        CHECK_EQ_SIZE(charged, zmalloc_size(p));
#if !ZMALLOC_HAVE_MALLOC_SIZE && !ZMALLOC_DEBUG_BUILD
        /* Size prefix path: the block is 100 bytes after max(align, 16). */
        CHECK_EQ_SIZE(charged, 100 + (aligns[i] > 16 ? aligns[i] : 16));
#endif
        zfree(p);
        CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    }
}

#if ZMALLOC_BACKEND_JEMALLOC
static void test_with_flags(void) {
    size_t base = zmalloc_used_memory();
    void *p = zmalloc_with_flags(100, 0);
    CHECK(p != NULL);
    CHECK_EQ_SIZE(zmalloc_used_memory() - base, zmalloc_size(p));
    p = zrealloc_with_flags(p, 5000, 0);
    CHECK(p != NULL);
    CHECK_EQ_SIZE(zmalloc_used_memory() - base, zmalloc_size(p));
    /* The limit and the reclaim handler apply. */
    zmalloc_set_memory_limit(zmalloc_used_memory() + 1000);
    zmalloc_set_reclaim_handler(free_victim);
    zmalloc_set_oom_handler(counting_oom);
    victim = NULL;
    handler_calls = oom_calls = 0;
    void *big = zmalloc_with_flags(100000, 0);
    CHECK(big == NULL);
    CHECK(handler_calls >= 1);
    CHECK_EQ_SIZE(oom_calls, 1);
    void *grown = zrealloc_with_flags(p, 200000, 0);
    CHECK(grown == NULL);
    CHECK_EQ_SIZE(oom_calls, 2);
    /* The reclaim handler frees the block being reallocated. */
    victim = p;
    errno = 0;
    grown = zrealloc_with_flags(p, 200000, 0);
    CHECK(grown == NULL && errno == ECANCELED);
    CHECK_EQ_SIZE(oom_calls, 2);
    zmalloc_set_memory_limit(0);
    zmalloc_set_reclaim_handler(NULL);
    zmalloc_set_oom_handler(NULL);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    p = zmalloc_with_flags(300, 0);
    zfree_with_flags(p, 0);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}
#endif

/* Every small size gets a block that holds it (the pool's fast path finds
 * the page from a table indexed by (size + 7) / 8 up to 1 KiB), and on
 * the pool the size class's own bound: waste under 16 bytes or 12.5%. */
static void test_small_sizes(void) {
    int fits = 1, tight = 1;
    size_t base = zmalloc_used_memory();
    for (size_t n = 0; n <= 1100; n++) {
        size_t u = 0;
        char *p = zmalloc_usable(n, &u);
        fits &= p != NULL && u >= n && u == zmalloc_usable_size(p);
        if (p && n) p[n - 1] = 1;
#if ZMALLOC_BACKEND_POOL && !ZMALLOC_DEBUG_BUILD
        size_t want = n ? n : 1;
        tight &= u - want < 16 || (u - want) * 8 <= want;
#endif
        zfree(p);
    }
    CHECK(fits);
    CHECK(tight);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

static void test_size_guard(void) {
    size_t u = 0;
    void *p = zmalloc_usable(0, &u);
    CHECK(p != NULL);
    CHECK(u >= sizeof(long));
    zfree(p);
    errno = 0;
    CHECK(ztrymalloc(SIZE_MAX / 2) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(ztrycalloc(SIZE_MAX / 2 + 1) == NULL && errno == ENOMEM);
}

int main(void) {
    test_reclaim_frees_the_block(0);
    test_reclaim_frees_the_block(1);
    test_reclaim_frees_another_block();
    test_aligned_charge();
#if ZMALLOC_BACKEND_JEMALLOC
    test_with_flags();
#endif
    test_small_sizes();
    test_size_guard();
    return test_summary("test_frontend_holes");
}
