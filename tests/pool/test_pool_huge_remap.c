/* test_pool_huge_remap.c: realloc of huge blocks moves pages (mremap)
 * instead of copying them: growing a fully written 32 MiB block to 64 MiB
 * and shrinking it back faults in (almost) no page, the content survives,
 * the block stays segment-aligned (zmalloc_size and free work through the
 * pointer mask), and mapped/committed/active/huge_live move by exactly the
 * size difference. */
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "pool/pool.h"
#include "test.h"
#include "zmalloc.h"

static long minflt(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i += 512) p[i] = (unsigned char)(i / 512 * 31 + seed);
    p[n - 1] = (unsigned char)seed;
}
static int same(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i += 512)
        if (p[i] != (unsigned char)(i / 512 * 31 + seed)) return 0;
    return 1;
}

typedef struct snap {
    size_t mapped, committed, active, huge_live, count;
} snap;
static snap take(void) {
    snap s = {atomic_load(&zp_stat.mapped), atomic_load(&zp_stat.committed),
              atomic_load(&zp_stat.active), atomic_load(&zp_stat.huge_live),
              atomic_load(&zp_stat.huge_count)};
    return s;
}

static int aligned(const void *p) {
    return (((uintptr_t)p - ZP_HDR_SIZE) & ZP_SEG_MASK) == 0 &&
           zp_segment_of(p)->kind == ZP_KIND_HUGE;
}

/* Resize p from n to m bytes; checks content, alignment, exact stats and
 * that no more than `max_faults` pages were faulted in. */
static unsigned char *resize(unsigned char *p, size_t n, size_t m, long max_faults,
                             unsigned seed) {
    snap a = take();
    size_t u0 = zmalloc_size(p);
    long f0 = minflt();
    unsigned char *q = zrealloc(p, m);
    long faults = minflt() - f0;
    snap b = take();
    size_t u1 = zmalloc_size(q);
    CHECK(q != NULL);
    CHECK(u1 >= m);
    CHECK(aligned(q));
    CHECK(same(q, n < m ? n : m, seed));
    if (faults > max_faults) printf("resize %zu -> %zu: %ld page faults\n", n, m, faults);
    CHECK(faults <= max_faults);
    long d = (long)u1 - (long)u0;
    CHECK(b.count == a.count);
    CHECK((long)(b.huge_live - a.huge_live) == d);
    CHECK((long)(b.mapped - a.mapped) == d);
    CHECK((long)(b.committed - a.committed) == d);
    CHECK((long)(b.active - a.active) == d);
    return q;
}

int main(void) {
    /* Page faults are counted per 4 KiB page: no transparent huge pages. */
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    zmalloc_purge();
    snap base = take();
    size_t used0 = zmalloc_used_memory();

    size_t n = (size_t)32 << 20, m = (size_t)64 << 20;
    unsigned char *p = zmalloc(n);
    memset(p, 0, n);
    fill(p, n, 7);
    /* A copy would fault in 8192 pages. */
    p = resize(p, n, m, 64, 7);
    fill(p, m, 9);
    p = resize(p, m, (size_t)20 << 20, 64, 9);
    n = (size_t)20 << 20;
    p = resize(p, n, (size_t)48 << 20, 64, 9);
    zfree(p);

    /* Growth by small steps, from a class block into the huge range and up
     * to 24 MiB, with another huge block allocated in between each time so
     * some steps cannot grow in place and must move. */
    n = 100000;
    p = zmalloc(n);
    fill(p, n, 3);
    int ok = 1;
    void *other[64];
    int no = 0;
    while (n < ((size_t)24 << 20)) {
        size_t step = n + n / 4 + 4096;
        unsigned char *q = zrealloc(p, step);
        ok &= q != NULL && same(q, n, 3) && zmalloc_size(q) >= step;
        if (step > ZP_MAX_CLASS_SIZE) ok &= aligned(q);
        p = q;
        fill(p, step, 3);
        n = step;
        if (no < 64) other[no++] = zmalloc(300000);
    }
    CHECK(ok);
    zfree(p);
    for (int i = 0; i < no; i++) zfree(other[i]);

    CHECK_EQ_SIZE(zmalloc_used_memory(), used0);
    zmalloc_purge();
    snap end = take();
    CHECK_EQ_SIZE(end.huge_live, base.huge_live);
    CHECK_EQ_SIZE(end.count, base.count);
    CHECK_EQ_SIZE(end.active, base.active);
    return test_summary("test_pool_huge_remap");
}
