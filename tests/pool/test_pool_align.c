/* test_pool_align.c: every power-of-two alignment from 16 bytes to 4 MiB
 * (and 16 MiB), with sizes below, at and above the alignment: the block is
 * aligned, writable over its whole usable size, and freed cleanly. */
#include <stdint.h>

#include "backend.h"
#include "test.h"
#include "zmalloc.h"

int main(void) {
    size_t base = zmalloc_used_memory();
    const size_t sizes[] = {1, 8, 16, 24, 100, 1000, 4096, 5000, 65536, 300000, 1 << 21};
    for (size_t a = 16; a <= ((size_t)16 << 20); a <<= 1) {
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            size_t n = sizes[i];
            /* Two at once, so the second does not simply reuse the first. */
            unsigned char *p = zmalloc_aligned(a, n);
            unsigned char *q = zmalloc_aligned(a, n);
            CHECK(p && q);
            if (!p || !q) continue;
            CHECK((uintptr_t)p % a == 0);
            CHECK((uintptr_t)q % a == 0);
            size_t up = zmalloc_size(p), uq = zmalloc_size(q);
            CHECK(up >= n && uq >= n);
            memset(p, 0xab, up);
            memset(q, 0xcd, uq);
            CHECK(p[0] == 0xab && p[up - 1] == 0xab && q[0] == 0xcd && q[uq - 1] == 0xcd);
            zfree(p);
            zfree(q);
        }
    }
    /* Many small aligned blocks live together stay distinct. */
    enum { N = 2000 };
    static unsigned char *v[N];
    for (int i = 0; i < N; i++) {
        size_t a = (size_t)16 << (i % 9);
        v[i] = zmalloc_aligned(a, (size_t)(i % 300) + 1);
        CHECK((uintptr_t)v[i] % a == 0);
        memset(v[i], i & 0xff, (size_t)(i % 300) + 1);
    }
    int bad = 0;
    for (int i = 0; i < N; i++)
        for (int k = 0; k <= i % 300; k++) bad += v[i][k] != (unsigned char)(i & 0xff);
    CHECK(bad == 0);
    for (int i = 0; i < N; i++) zfree(v[i]);
    /* Backend directly, including alignments only sizeof(void *) wide. */
    size_t u;
    void *p = zm_be_aligned_alloc(8, 10, &u);
    CHECK(p && (uintptr_t)p % 8 == 0 && u >= 10);
    zm_be_free(p, u);
    /* 16-byte alignment of sizes whose plain class is only 8-aligned
     * (24, 40, 56: pool.h): rounded up to a 16-byte multiple. */
    for (size_t n = 17; n <= 64; n++) {
        p = zm_be_aligned_alloc(16, n, &u);
        CHECK(p && (uintptr_t)p % 16 == 0 && u >= n && u % 16 == 0);
        zm_be_free(p, u);
        p = zmalloc_aligned(16, n);
        CHECK(p && (uintptr_t)p % 16 == 0 && zmalloc_usable_size(p) >= n);
        zfree(p);
    }
    /* A 0-byte aligned request gets a block of the alignment's class. */
    p = zm_be_aligned_alloc(32, 0, &u);
    CHECK(p && (uintptr_t)p % 32 == 0 && u >= 1);
    zm_be_free(p, u);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    return test_summary("test_pool_align");
}
