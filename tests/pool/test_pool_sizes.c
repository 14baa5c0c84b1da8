/* test_pool_sizes.c: every size from 0 to 64 KiB, then a sweep of large
 * sizes: each block fully written, its usable size within the class bound
 * (waste below 16 bytes or below 12.5% of the block), 16-byte aligned (8 for
 * the 8-, 24-, 40- and 56-byte classes), and
 * its contents intact when the neighbours are written too. */
#include <stdint.h>

#include "backend.h"
#include "pool/pool.h"
#include "test.h"
#include "zmalloc.h"

static int within_class_bound(size_t req, size_t usable) {
    if (usable < req) return 0;
    size_t waste = usable - req;
    return waste < 16 || waste * 8 <= usable;
}

/* The class table: sizes strictly increasing, each class the smallest that
 * holds its size, 8-byte steps to 64 and 16-byte steps to 128. */
static void test_class_table(void) {
    int bad = 0;
    for (unsigned c = 0; c < ZP_NCLASSES; c++) {
        size_t sz = zp_class_size(c), prev = c ? zp_class_size(c - 1) : 0;
        if (zp_class_of(sz) != c || zp_class_of(prev + 1) != c || sz <= prev) {
            if (bad++ < 5) fprintf(stderr, "class %u: size %zu, previous %zu\n", c, sz, prev);
        }
        if (sz <= 64 && sz != 8 * (size_t)(c + 1)) bad++;
        if (sz > 64 && sz % 16) bad++; /* every class above 64 is 16-aligned */
    }
    CHECK(bad == 0);
    CHECK_EQ_SIZE(zp_class_size(ZP_NCLASSES - 1), ZP_MAX_CLASS_SIZE);
    /* What a request gets is its class's size, on the fast path (the
     * direct table, up to 1 KiB) and off it. */
    int wrong = 0;
    for (size_t n = 1; n <= 300000; n += n < 2048 ? 1 : n / 64) {
        void *p = zmalloc(n);
        size_t want = n <= ZP_MAX_CLASS_SIZE ? zp_class_size(zp_class_of(n)) : 0;
        if (want && zmalloc_usable_size(p) != want) {
            if (wrong++ < 5) fprintf(stderr, "zmalloc(%zu): usable %zu, class %zu\n", n,
                                     zmalloc_usable_size(p), want);
        }
        zfree(p);
    }
    CHECK(wrong == 0);
    /* The 8-byte steps are real classes: a 24-byte dict entry takes 24. */
    void *e = zmalloc(24), *d = zmalloc(56);
    CHECK_EQ_SIZE(zmalloc_usable_size(e), 24);
    CHECK_EQ_SIZE(zmalloc_usable_size(d), 56);
    zfree(e);
    zfree(d);
}

int main(void) {
    size_t base = zmalloc_used_memory();
    test_class_table();
    int bad_bound = 0, bad_align = 0, bad_fill = 0;
    for (size_t n = 0; n <= 65536; n++) {
        unsigned char *p = zmalloc(n);
        size_t u = zmalloc_size(p);
        if (!within_class_bound(n ? n : 1, u)) {
            if (bad_bound++ < 5) fprintf(stderr, "size %zu -> usable %zu\n", n, u);
        }
        if ((uintptr_t)p % ((u % 16) ? 8 : 16)) bad_align++;
        memset(p, (int)(n & 0xff), u);
        if (p[0] != (unsigned char)(n & 0xff) || p[u - 1] != (unsigned char)(n & 0xff)) bad_fill++;
        zfree(p);
    }
    CHECK(bad_bound == 0);
    CHECK(bad_align == 0);
    CHECK(bad_fill == 0);

    /* Many live blocks at once, each with its own pattern, checked after all
     * are written: catches overlapping blocks. */
    enum { N = 4096 };
    static unsigned char *blocks[N];
    static size_t sizes[N];
    uint32_t seed = 12345;
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        sizes[i] = (seed >> 8) % 20000;
        blocks[i] = zmalloc(sizes[i]);
        memset(blocks[i], i & 0xff, zmalloc_size(blocks[i]));
    }
    int overlap = 0;
    for (int i = 0; i < N; i++) {
        size_t u = zmalloc_size(blocks[i]);
        for (size_t k = 0; k < u; k++)
            if (blocks[i][k] != (unsigned char)(i & 0xff)) {
                overlap++;
                break;
            }
    }
    CHECK(overlap == 0);
    for (int i = 0; i < N; i++) zfree(blocks[i]);

    /* Large range: straight from mmap, usable within one OS page. */
    for (size_t n = 200000; n <= ((size_t)20 << 20); n = n * 3 / 2 + 4097) {
        unsigned char *p = zmalloc(n);
        size_t u = zmalloc_size(p);
        CHECK(u >= n && u < n + 2 * 4096 + 8192);
        CHECK((uintptr_t)p % 16 == 0);
        p[0] = 1;
        p[n - 1] = 2;
        memset(p, 7, u);
        CHECK(p[u - 1] == 7);
        zfree(p);
    }
    /* The backend's own interface: usable reported == usable size query. */
    for (size_t n = 1; n < 300000; n += n / 3 + 1) {
        size_t u = 0;
        void *p = zm_be_malloc(n, &u);
        CHECK(p != NULL && u == zm_be_usable_size(p) && u >= n);
        zm_be_free(p, u);
        p = zm_be_calloc(n, &u);
        int zero = 1;
        for (size_t k = 0; k < n; k++) zero &= ((unsigned char *)p)[k] == 0;
        CHECK(zero);
        zm_be_free(p, u);
    }
    /* A huge block freed and taken again (the pool caches mappings) must
     * still come back zeroed from calloc. */
    for (int round = 0; round < 4; round++) {
        size_t n = ((size_t)1 << 20) + (size_t)round * 4096;
        unsigned char *d = zmalloc(n);
        memset(d, 0xff, zmalloc_size(d));
        zfree(d);
        unsigned char *z = zcalloc(n);
        int zero = 1;
        for (size_t k = 0; k < n; k++) zero &= z[k] == 0;
        CHECK(zero);
        zfree(z);
    }
    CHECK(strcmp(zm_be_version(), "pool") == 0);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    return test_summary("test_pool_sizes");
}
