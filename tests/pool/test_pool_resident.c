/* test_pool_resident.c: the "resident" figure counts what pages really
 * touched, not whole page areas: one fully written block of every class
 * (a 4 MiB page for each class above 64 KiB, 512 KiB above 8 KiB) plus many
 * small blocks must leave resident at most the process RSS plus a little,
 * and at least what is allocated; allocated <= active <= resident. Freeing
 * and reallocating (dirty pages reused) must not count pages twice, and a
 * purge brings resident back down. */
#include <stdint.h>
#include <sys/prctl.h>

#include "backend.h"
#include "pool/pool.h"
#include "test.h"
#include "zmalloc.h"

enum { NSMALL = 100000 };
static void *small[NSMALL];
static void *each[ZP_NCLASSES];

static void check(const char *when, size_t slack) {
    zm_be_stats st;
    zm_be_get_stats(1, &st);
    size_t rss = zmalloc_get_rss();
    printf("%s: allocated %zu active %zu resident %zu rss %zu\n", when, st.allocated,
           st.active, st.resident, rss);
    CHECK(st.allocated <= st.active);
    CHECK(st.active <= st.resident);
    CHECK(st.resident <= rss + slack);
}

static void fill_all(void) {
    for (unsigned c = 0; c < ZP_NCLASSES; c++) {
        size_t sz = zp_class_size(c);
        each[c] = zmalloc(sz);
        memset(each[c], (int)c, sz);
    }
    for (int i = 0; i < NSMALL; i++) {
        size_t sz = 16 + (size_t)(i % 7) * 16;
        small[i] = zmalloc(sz);
        memset(small[i], i, sz);
    }
}

static void free_all(void) {
    for (unsigned c = 0; c < ZP_NCLASSES; c++) zfree(each[c]);
    for (int i = 0; i < NSMALL; i++) zfree(small[i]);
}

int main(void) {
    /* RSS counted in 4 KiB pages, as the allocator counts. */
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    const size_t slack = (size_t)1 << 20;
    fill_all();
    check("filled", slack);
    free_all();
    check("freed", slack);
    fill_all();
    check("refilled", slack);
    free_all();
    zmalloc_purge();
    zm_be_stats st;
    zm_be_get_stats(1, &st);
    check("purged", slack);
    /* What is left: the segment headers, the heap struct, the pages of
     * blocks the C library allocated. */
    CHECK(st.resident < ((size_t)2 << 20));
    return test_summary("test_pool_resident");
}
