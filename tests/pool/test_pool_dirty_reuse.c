/* test_pool_dirty_reuse.c: the decommit policy is not eager. Memory a
 * thread frees and allocates again soon is still resident:
 *  - a heap's last pool_dirty_reserve bytes of free pages survive the purge
 *    timer (1 MiB freed, idle for pool_dirty_age_ms + pool_purge_interval_ms
 *    and a margin, read with zmalloc_get_option; a slow path runs the timer,
 *    the 1 MiB allocated again faults in almost nothing);
 *  - a segment whose pages all went free keeps them while they are young
 *    (6 MiB over two segments freed and allocated again at once);
 * and zmalloc_purge() still gives everything back. */
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

#include "backend.h"
#include "test.h"
#include "zmalloc.h"

static long minflt(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_minflt;
}

enum { BS = 1024, MAXN = 6 << 10 };
static void *blk[MAXN];

static void alloc_n(int n) {
    for (int i = 0; i < n; i++) {
        blk[i] = zmalloc(BS);
        memset(blk[i], i, BS);
    }
}
static void free_n(int n) {
    for (int i = 0; i < n; i++) zfree(blk[i]);
}

int main(void) {
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    /* Warm up: segments and heap exist. */
    alloc_n(MAXN);
    free_n(MAXN);
    zmalloc_purge();

    /* Two segments' worth freed and allocated again at once. */
    alloc_n(MAXN);
    free_n(MAXN);
    long f0 = minflt();
    alloc_n(MAXN);
    long faults = minflt() - f0;
    printf("6 MiB again at once: %ld page faults\n", faults);
    CHECK(faults < MAXN / 4 / 20); /* a page of 4 blocks; < 5% refaulted */
    free_n(MAXN);
    zmalloc_purge();

    /* 1 MiB freed, aged past the purge timer, allocated again. */
    int n = 1 << 10;
    long long age = zmalloc_get_option("pool_dirty_age_ms");
    long long interval = zmalloc_get_option("pool_purge_interval_ms");
    long long reserve = zmalloc_get_option("pool_dirty_reserve");
    CHECK(age >= 0 && interval >= 0);
    CHECK(reserve >= (long long)n * BS + (48 << 10)); /* the 1 MiB and three probe pages */
    alloc_n(n);
    free_n(n);
    long long wait_ms = age + interval + 50; /* past both: the next slow path purges */
    struct timespec ts = {(time_t)(wait_ms / 1000), (long)(wait_ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    for (int r = 0; r < 3; r++) { /* slow paths: a fresh page of another class */
        void *x = zmalloc(3000 + r * 1000);
        zfree(x);
    }
    f0 = minflt();
    alloc_n(n);
    faults = minflt() - f0;
    printf("1 MiB again after %lld ms: %ld page faults\n", wait_ms, faults);
    /* The three probe pages came from the dirty list too: their 48 KiB
     * are faulted in again by the 1 KiB class; the rest must not be. */
    CHECK(faults < n / 4 / 3);
    free_n(n);

    zmalloc_purge();
    zm_be_stats st;
    zm_be_get_stats(1, &st);
    printf("after purge: resident %zu\n", st.resident);
    CHECK(st.resident < ((size_t)1 << 20));
    return test_summary("test_pool_dirty_reuse");
}
