/* test_pool_remote.c: producer/consumer, every free remote. The consumer
 * frees what the producer allocated; the producer must reuse that memory,
 * so resident memory stays flat however many blocks pass through. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "backend.h"
#include "test.h"
#include "zmalloc.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define TOTAL 300000
#else
#define TOTAL 3000000
#endif
#define RING 4096

static unsigned char *_Atomic ring[RING];
static _Atomic int bad;

static void *producer(void *arg) {
    (void)arg;
    for (long i = 0; i < TOTAL; i++) {
        size_t n = 16 + (size_t)(i % 500);
        unsigned char *p = zmalloc(n);
        memset(p, (int)(n & 0xff), n);
        p[0] = (unsigned char)(n >> 8);
        size_t slot = (size_t)i % RING;
        while (atomic_load(&ring[slot]) != NULL) sched_yield();
        atomic_store(&ring[slot], p);
    }
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    for (long i = 0; i < TOTAL; i++) {
        size_t slot = (size_t)i % RING;
        unsigned char *p;
        while ((p = atomic_exchange(&ring[slot], NULL)) == NULL) sched_yield();
        size_t n = zmalloc_size(p);
        if (n < 16) atomic_store(&bad, 1);
        if (p[1] != p[2]) atomic_store(&bad, 1);
        zfree(p);
    }
    return NULL;
}

int main(void) {
    size_t base = zmalloc_used_memory();
    pthread_t a, b;
    pthread_create(&a, NULL, producer, NULL);
    pthread_create(&b, NULL, consumer, NULL);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    CHECK(atomic_load(&bad) == 0);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    zm_be_stats st;
    zm_be_get_stats(1, &st);
    /* At most RING blocks of <= 528 bytes live at once (~2 MiB): resident
     * must be of that order, not of TOTAL blocks (~800 MiB). */
    fprintf(stderr, "resident after %d remote frees: %zu KiB\n", TOTAL, st.resident >> 10);
    CHECK(st.resident < ((size_t)48 << 20));
    CHECK(st.allocated <= st.active && st.active <= st.resident);
    return test_summary("test_pool_remote");
}
