/* test_pool_realloc.c: realloc up through every class into the huge range
 * and back down keeps the content; shrinking within a class keeps the
 * block; the accounting ends where it began. */
#include <stdint.h>

#include "test.h"
#include "zmalloc.h"

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 31 + seed);
}
static int same(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(i * 31 + seed)) return 0;
    return 1;
}

int main(void) {
    size_t base = zmalloc_used_memory();
    size_t n = 1;
    unsigned char *p = zmalloc(n);
    fill(p, n, 1);
    int ok = 1;
    while (n < ((size_t)24 << 20)) {
        size_t m = n + n / 5 + 7;
        p = zrealloc(p, m);
        ok &= same(p, n, 1);
        fill(p, m, 1);
        n = m;
    }
    CHECK(ok);
    ok = 1;
    while (n > 3) {
        size_t m = n - n / 4 - 1;
        p = zrealloc(p, m);
        ok &= same(p, m, 1);
        n = m;
    }
    CHECK(ok);
    zfree(p);

    /* Within one class the block stays put. */
    p = zmalloc(100);
    size_t u = zmalloc_size(p);
    void *q = zrealloc(p, u);
    CHECK(q == p);
    q = zrealloc(q, u - 5);
    CHECK(q == p);
    zfree(q);

    /* Large to small and back, many blocks at once. */
    enum { N = 64 };
    unsigned char *v[N];
    size_t sz[N];
    for (int i = 0; i < N; i++) {
        sz[i] = (size_t)(i + 1) * 5000;
        v[i] = zmalloc(sz[i]);
        fill(v[i], sz[i], (unsigned)i);
    }
    for (int round = 0; round < 6; round++) {
        for (int i = 0; i < N; i++) {
            size_t m = round % 2 ? sz[i] * 7 : sz[i] / 7 + 1;
            v[i] = zrealloc(v[i], m);
            ok &= same(v[i], m < sz[i] ? m : sz[i], (unsigned)i);
            fill(v[i], m, (unsigned)i);
            sz[i] = m;
        }
    }
    CHECK(ok);
    for (int i = 0; i < N; i++) zfree(v[i]);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    return test_summary("test_pool_realloc");
}
