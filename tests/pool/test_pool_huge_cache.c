/* test_pool_huge_cache.c: freed huge mappings are reused without faulting
 * their pages in again: 24 blocks of 1 MiB (24 MiB) freed and allocated
 * again fault in (almost) nothing; a cached 1 MiB mapping serves a 1.5 MiB
 * request, its pages moved into the new mapping (only the other 0.5 MiB is
 * fresh); calloc of such a block is all zero; an 8 MiB entry serves 3 MiB
 * and keeps the rest cached for a 4 MiB request after it; two cached 3 MiB
 * mappings are put together for a 6 MiB calloc (pages moved, not faulted,
 * the result all zero); the accounting is exact and zmalloc_purge() unmaps
 * the cache. The cache's age limit is set far above any stall of a loaded
 * machine (ZMALLOC_POOL_HUGE_CACHE_AGE_MS, before the first allocation
 * reads the options), so nothing expires by timing; the size limits are
 * read back with zmalloc_get_option. */
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

enum { N = 24 };
#define MB ((size_t)1 << 20)

static size_t mapped0, committed0;

/* q, the only live huge block: segment-aligned, and counted exactly. */
static void check_one_huge_block(const void *q) {
    CHECK((((uintptr_t)q - ZP_HDR_SIZE) & ZP_SEG_MASK) == 0);
    size_t u = zmalloc_size((void *)q);
    CHECK_EQ_SIZE(atomic_load(&zp_stat.huge_live), u);
    CHECK_EQ_SIZE(atomic_load(&zp_stat.mapped), mapped0 + u + ZP_HDR_SIZE);
    CHECK_EQ_SIZE(atomic_load(&zp_stat.committed), committed0 + u + ZP_HDR_SIZE);
}

/* After zmalloc_purge(), with no huge block live: nothing left mapped. */
static void check_purged(void) {
    zmalloc_purge();
    CHECK_EQ_SIZE(atomic_load(&zp_stat.mapped), mapped0);
    CHECK_EQ_SIZE(atomic_load(&zp_stat.committed), committed0);
}

int main(void) {
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    setenv("ZMALLOC_POOL_HUGE_CACHE_AGE_MS", "3600000", 1);
    void *warm = zmalloc(100);
    CHECK(zmalloc_get_option("pool_huge_cache_age_ms") == 3600000);
    long long cache = zmalloc_get_option("pool_huge_cache");
    long long entry_max = zmalloc_get_option("pool_huge_cache_entry_max");
    printf("huge cache %lld bytes, entries up to %lld bytes\n", cache, entry_max);
    /* The test needs room for its 24 MiB and a 1.5 MiB entry. */
    CHECK(cache >= (long long)(N * (MB + ZP_HDR_SIZE)) && entry_max >= (long long)(2 * MB));
    zmalloc_purge();
    mapped0 = atomic_load(&zp_stat.mapped);
    committed0 = atomic_load(&zp_stat.committed);
    void *b[N];
    for (int i = 0; i < N; i++) {
        b[i] = zmalloc(MB);
        memset(b[i], i, MB);
    }
    for (int i = 0; i < N; i++) zfree(b[i]);
    long f0 = minflt();
    for (int i = 0; i < N; i++) {
        b[i] = zmalloc(MB);
        memset(b[i], i, MB);
    }
    long faults = minflt() - f0;
    printf("24 x 1 MiB again: %ld page faults\n", faults);
    CHECK(faults < (long)(N * MB / 4096 / 10));
    for (int i = 0; i < N; i++) zfree(b[i]);
    check_purged();

    /* One cached 1 MiB mapping, then 1.5 MiB: its pages moved in, only the
     * rest fresh. */
    void *p = zmalloc(MB);
    memset(p, 0x5a, MB);
    zfree(p);
    f0 = minflt();
    unsigned char *q = zcalloc(MB + MB / 2);
    faults = minflt() - f0;
    printf("1 MiB cached -> 1.5 MiB calloc: %ld page faults\n", faults);
    int zero = 1;
    for (size_t i = 0; i < zmalloc_size(q); i++) zero &= q[i] == 0;
    CHECK(zero);
    CHECK(faults < 32); /* the old part zeroed in place, the new part fresh */
    CHECK(zmalloc_size(q) >= MB + MB / 2);
    check_one_huge_block(q);
    zfree(q);
    check_purged();

    /* Split: 8 MiB cached, 3 MiB taken, the remainder serves 4 MiB. */
    p = zmalloc(8 * MB);
    memset(p, 1, 8 * MB);
    zfree(p);
    f0 = minflt();
    unsigned char *a = zmalloc(3 * MB), *b4 = zmalloc(4 * MB);
    memset(a, 2, 3 * MB);
    memset(b4, 3, 4 * MB);
    faults = minflt() - f0;
    printf("8 MiB cached -> 3 MiB + 4 MiB: %ld page faults\n", faults);
    CHECK(faults < 64);
    CHECK((((uintptr_t)a - ZP_HDR_SIZE) & ZP_SEG_MASK) == 0);
    CHECK((((uintptr_t)b4 - ZP_HDR_SIZE) & ZP_SEG_MASK) == 0);
    CHECK(a[3 * MB - 1] == 2 && b4[0] == 3 && b4[4 * MB - 1] == 3);
    size_t ua = zmalloc_size(a), ub = zmalloc_size(b4);
    CHECK(ua >= 3 * MB && ub >= 4 * MB);
    CHECK_EQ_SIZE(atomic_load(&zp_stat.huge_live), ua + ub);
    zfree(a);
    zfree(b4);
    check_purged();

    /* Gather: two cached 3 MiB mappings make a 6 MiB calloc. */
    a = zmalloc(3 * MB);
    b4 = zmalloc(3 * MB);
    memset(a, 0x77, 3 * MB);
    memset(b4, 0x66, 3 * MB);
    zfree(a);
    zfree(b4);
    f0 = minflt();
    q = zcalloc(6 * MB);
    zero = 1;
    for (size_t i = 0; i < zmalloc_size(q); i++) zero &= q[i] == 0;
    CHECK(zero);
    memset(q, 0x11, 6 * MB); /* a fresh page would fault here */
    faults = minflt() - f0;
    printf("2 x 3 MiB cached -> 6 MiB calloc, written: %ld page faults\n", faults);
    CHECK(faults < 64);
    check_one_huge_block(q);
    zfree(q);
    check_purged();
    zfree(warm);
    return test_summary("test_pool_huge_cache");
}
