/* test_prof_threads.c: sampling and guarded sampling from several threads
 * at once, with blocks freed by other threads than their allocators and
 * threads exiting with sampled blocks live. The TSan build runs it (its name
 * matches scripts/test.sh's "thread" filter). Afterwards every sampled
 * block has left the profile: the in-use total is 0. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "test.h"
#include "zmalloc.h"

#define THREADS 4
#define ROUNDS 20000
#define SLOTS 1024

static _Atomic(void *) shared[SLOTS];

static void *worker(void *arg) {
    uintptr_t seed = (uintptr_t)arg * 2654435761u + 1;
    for (int i = 0; i < ROUNDS; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t size = 8 + (seed >> 33) % 3000;
        char *p = zmalloc(size);
        p[0] = 1;
        p[size - 1] = 2;
        if (i % 3 == 0) p = zrealloc(p, size * 2);
        /* Swap with a slot: the block we get back was usually allocated by
         * another thread. */
        void *old = atomic_exchange(&shared[(seed >> 20) % SLOTS], p);
        zfree(old);
    }
    return NULL;
}

int main(void) {
    zmalloc_prof_set_sample(4096);
    zmalloc_guard_set_sample(100);
    pthread_t t[THREADS];
    for (int round = 0; round < 2; round++) {
        for (uintptr_t i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)i);
        for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/zm-prof-threads-%ld.heap", (long)getpid());
    CHECK(zmalloc_prof_dump(path) == 0);
    long long v[4] = {0, 0, 0, 0};
    FILE *f = fopen(path, "r");
    CHECK(f && fscanf(f, "heap profile: %lld: %lld [%lld: %lld]", &v[0], &v[1], &v[2], &v[3]) == 4);
    if (f) fclose(f);
    printf("live: %lld bytes, allocated %lld bytes, dropped samples %zu\n", v[1], v[3], zmalloc_prof_dropped());
    CHECK(v[1] > 0 && v[3] > v[1]);
    for (int i = 0; i < SLOTS; i++) zfree(atomic_exchange(&shared[i], NULL));
    CHECK(zmalloc_prof_dump(path) == 0);
    f = fopen(path, "r");
    CHECK(f && fscanf(f, "heap profile: %lld: %lld [%lld: %lld]", &v[0], &v[1], &v[2], &v[3]) == 4);
    if (f) fclose(f);
    printf("after freeing everything: %lld blocks, %lld bytes in use; %lld bytes allocated\n",
           v[0], v[1], v[3]);
    CHECK(v[0] == 0 && v[1] == 0);
    CHECK(zmalloc_used_memory() < 1024 * 1024);
    unlink(path);
    zmalloc_prof_set_sample(0);
    zmalloc_guard_set_sample(0);
    return test_summary("test_prof_threads");
}
