/* test_pool_rbatch.c: remote frees are held in the freeing thread's batch
 * and pushed a chain at a time. Whatever the freeing thread does next (exit,
 * purge, read the statistics) the blocks must reach their pages: after the
 * owner purges, the pages the blocks came from are empty and given back,
 * and the statistics are exact. The blocks span several pages per class and
 * many classes, so chains break on page changes too. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "backend.h"
#include "test.h"
#include "zmalloc.h"

#define NCLS 20
#define PER 1500 /* per class: several 64 KiB pages for the small sizes */

static void *blocks[NCLS * PER];
static _Atomic int phase;
static int mode;

static void *freer(void *arg) {
    (void)arg;
    /* Interleave classes, and within a class walk the pages backwards and
     * forwards, so chains are cut by page changes as well as by bounds. */
    for (int i = 0; i < PER; i++)
        for (int c = 0; c < NCLS; c++) {
            int j = (i & 1) ? PER - 1 - i / 2 : i / 2;
            zfree(blocks[c * PER + j]);
        }
    if (mode == 1) zm_be_purge();
    if (mode == 2) {
        zm_be_stats st;
        zm_be_get_stats(1, &st);
    }
    if (mode == 0) return NULL;
    atomic_store(&phase, 1);
    while (atomic_load(&phase) != 2) sched_yield();
    return NULL;
}

static void run(int m) {
    zm_be_purge();
    size_t used0 = zmalloc_used_memory();
    zm_be_stats s0, s1;
    zm_be_get_stats(1, &s0);
    for (int c = 0; c < NCLS; c++)
        for (int j = 0; j < PER; j++) {
            size_t n = 16 + (size_t)c * 48;
            blocks[c * PER + j] = zmalloc(n);
            memset(blocks[c * PER + j], c, n);
        }
    mode = m;
    atomic_store(&phase, 0);
    pthread_t t;
    pthread_create(&t, NULL, freer, NULL);
    if (m == 0)
        pthread_join(t, NULL);
    else
        while (atomic_load(&phase) != 1) sched_yield();
    /* The freer is gone or idle: nothing it freed may still be held. */
    zm_be_purge();
    zm_be_get_stats(1, &s1);
    fprintf(stderr, "mode %d: allocated %zu -> %zu, active %zu -> %zu\n", m, s0.allocated,
            s1.allocated, s0.active, s1.active);
    CHECK_EQ_SIZE(zmalloc_used_memory(), used0);
    CHECK_EQ_SIZE(s1.allocated, s0.allocated);
    /* Held blocks would keep up to NCLS fully carved pages (>1 MiB) in use. */
    CHECK(s1.active <= s0.active + ((size_t)128 << 10));
    if (m != 0) {
        atomic_store(&phase, 2);
        pthread_join(t, NULL);
    }
}

int main(void) {
    run(0); /* freer exits   */
    run(1); /* freer purges  */
    run(2); /* freer reads statistics */
    return test_summary("test_pool_rbatch");
}
