/* test_pool_churn.c: 10,000 short-lived threads, each allocating and
 * freeing (some of it left for the next thread to free): thread exit hands
 * memory back, so RSS and the segment count stay bounded, and blocks whose
 * owner exited are still freeable. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "backend.h"
#include "test.h"
#include "zmalloc.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define THREADS 2000
#else
#define THREADS 10000
#endif

static void *_Atomic handoff[64];
static _Atomic int bad;

static void *worker(void *arg) {
    uintptr_t id = (uintptr_t)arg;
    void *keep[32];
    for (int i = 0; i < 32; i++) {
        size_t n = 16 + (size_t)((id * 7 + (uintptr_t)i * 131) % 5000);
        keep[i] = zmalloc(n);
        memset(keep[i], (int)(id & 0xff), n);
    }
    for (int i = 0; i < 32; i += 2) zfree(keep[i]);
    /* Leave one block for a later thread, free the one left before. */
    unsigned char *mine = zmalloc(200);
    memset(mine, (int)(id & 0xff), 200);
    unsigned char *prev = atomic_exchange(&handoff[id % 64], mine);
    if (prev) {
        for (int i = 1; i < 200; i++)
            if (prev[i] != prev[0]) atomic_store(&bad, 1);
        zfree(prev);
    }
    for (int i = 1; i < 32; i += 2) zfree(keep[i]);
    return NULL;
}

static void run(int from, int to) {
    for (int i = from; i < to; i += 8) {
        pthread_t t[8];
        int n = 0;
        for (int k = 0; k < 8 && i + k < to; k++, n++)
            pthread_create(&t[k], NULL, worker, (void *)(uintptr_t)(i + k));
        for (int k = 0; k < n; k++) pthread_join(t[k], NULL);
    }
}

int main(void) {
    size_t base = zmalloc_used_memory();
    run(0, THREADS / 10);
    size_t rss_early = zmalloc_get_rss();
    zm_be_stats early;
    zm_be_get_stats(1, &early);
    run(THREADS / 10, THREADS);
    size_t rss_late = zmalloc_get_rss();
    zm_be_stats late;
    zm_be_get_stats(1, &late);
    fprintf(stderr, "rss after %d threads %zu KiB, after %d %zu KiB; resident %zu -> %zu\n",
            THREADS / 10, rss_early >> 10, THREADS, rss_late >> 10, early.resident,
            late.resident);
    CHECK(atomic_load(&bad) == 0);
    /* Bounded: 9x more threads must not mean materially more memory. (The
     * process RSS only without sanitizers: ASan keeps per-thread state of
     * its own for threads that have exited.) */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    CHECK(rss_late < rss_early + ((size_t)8 << 20));
#endif
    CHECK(late.resident < early.resident + ((size_t)8 << 20));
    CHECK(late.resident < ((size_t)64 << 20));
    for (int i = 0; i < 64; i++) zfree(atomic_exchange(&handoff[i], NULL));
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    zmalloc_purge();
    zm_be_stats end;
    zm_be_get_stats(1, &end);
    CHECK(end.allocated <= end.active && end.active <= end.resident);
    CHECK(end.resident < ((size_t)16 << 20));
    return test_summary("test_pool_churn");
}
