/* handover.c: the thread shape that exposed the jemalloc backend's binding
 * bug, linked as the README links (no libc malloc call of its own, so with
 * --as-needed the program does not list the backend library at all).
 *
 * Built by tests/link/run.sh against an installed zmalloc. THREADS threads
 * (in waves of WAVE) each allocate PER_THREAD blocks of mixed sizes and
 * write a pattern over every usable byte's stride and the last byte, free
 * half and hand the other half to the main thread, which checks contents
 * and usable sizes and frees them; zmalloc_used_memory() must be back at
 * its baseline to the byte. Then the API suite (tests/test_api.c, compiled
 * in as test_api_suite) runs in the same process.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "zmalloc.h"

int test_api_suite(void);

enum { PER_THREAD = 32, WAVE = 50 };

typedef struct handed {
    unsigned char *block[PER_THREAD / 2];
    size_t size[PER_THREAD / 2];
    unsigned seed;
} handed;

static size_t size_for(unsigned x) {
    /* Mostly small, some medium, a few large (jemalloc's large classes are
     * 25% apart, glibc's chunks 16 bytes: a mismatch shows at once). */
    unsigned r = x % 100;
    if (r < 70) return 1 + x % 512;
    if (r < 95) return 512 + x % 60000;
    return 100000 + x % 900000;
}

static unsigned char pattern(unsigned seed, size_t i) {
    return (unsigned char)(seed * 31u + i * 7u);
}

static void *thread_main(void *arg) {
    handed *h = arg;
    unsigned x = h->seed * 2654435761u;
    unsigned char *mine[PER_THREAD];
    size_t sizes[PER_THREAD];
    for (int i = 0; i < PER_THREAD; i++) {
        x = x * 1103515245u + 12345u;
        size_t usable;
        mine[i] = zmalloc_usable(size_for(x >> 8), &usable);
        sizes[i] = usable;
        for (size_t j = 0; j < usable; j += 61) mine[i][j] = pattern(h->seed + (unsigned)i, j);
        mine[i][usable - 1] = pattern(h->seed + (unsigned)i, usable - 1);
    }
    for (int i = 0; i < PER_THREAD; i++) {
        if (i & 1) {
            h->block[i / 2] = mine[i];
            h->size[i / 2] = sizes[i];
        } else {
            zfree(mine[i]);
        }
    }
    return NULL;
}

static int handed_intact(const handed *h) {
    for (int k = 0; k < PER_THREAD / 2; k++) {
        unsigned seed = h->seed + (unsigned)(2 * k + 1);
        const unsigned char *b = h->block[k];
        size_t n = h->size[k];
        for (size_t j = 0; j < n; j += 61)
            if (b[j] != pattern(seed, j)) return 0;
        if (b[n - 1] != pattern(seed, n - 1)) return 0;
        if (zmalloc_usable_size(h->block[k]) != n) return 0;
    }
    return 1;
}

static void threads_hand_over(int threads) {
    size_t base = zmalloc_used_memory();
    static handed hs[WAVE];
    pthread_t th[WAVE];
    int bad = 0, created = 0;
    for (int done = 0; done < threads; done += WAVE) {
        int n = threads - done < WAVE ? threads - done : WAVE;
        for (int i = 0; i < n; i++) {
            hs[i].seed = (unsigned)(done + i + 1);
            if (pthread_create(&th[i], NULL, thread_main, &hs[i]) == 0) created++;
            else th[i] = 0;
        }
        for (int i = 0; i < n; i++) {
            if (!th[i]) continue;
            pthread_join(th[i], NULL);
            if (!handed_intact(&hs[i])) bad++;
            for (int k = 0; k < PER_THREAD / 2; k++) zfree(hs[i].block[k]);
        }
    }
    long long drift = (long long)zmalloc_used_memory() - (long long)base;
    printf("  %d threads (%d created): %d bad hand-overs, used memory %+lld bytes from baseline\n",
           threads, created, bad, drift);
    CHECK(created == threads);
    CHECK(bad == 0);
    CHECK(drift == 0);
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1000;
    threads_hand_over(threads);
    int api_failed = test_api_suite();
    int own = test_summary("handover");
    return own || api_failed;
}
