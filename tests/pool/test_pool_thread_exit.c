/* test_pool_thread_exit.c: the edges of a heap's life.
 *  - allocation from a constructor, before main (lazy init, no order);
 *  - blocks allocated by a thread that has exited, freed later by main and
 *    by other threads (abandoned pages), then their memory reused;
 *  - a pthread key destructor that allocates and frees after the pool's own
 *    thread-exit handler may already have run (the heap comes back);
 *  - a thread that only frees (never allocates) blocks of other threads;
 *  - a thread whose first call is a free does not take the heap a worker
 *    left parked: the next worker does (with its pages and the blocks
 *    freed into them), as in a main thread freeing what each worker of a
 *    thread pool handed it;
 *  - but a thread that frees first and then allocates (a Larson server
 *    generation: it frees the blocks it inherited, then allocates) trades
 *    its fresh heap for the parked one at its first allocation, with the
 *    used-memory total exact across the trade. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "backend.h"
#include "pool/pool.h"
#include "test.h"
#include "zmalloc.h"

static void *early[100];
static size_t early_ok;

__attribute__((constructor)) static void before_main(void) {
    for (int i = 0; i < 100; i++) {
        early[i] = zmalloc((size_t)i * 37 + 1);
        memset(early[i], 0x11, (size_t)i * 37 + 1);
    }
    void *p = zmalloc_aligned(4096, 100);
    early_ok = ((uintptr_t)p % 4096 == 0);
    zfree(p);
}

#define KEPT 5000
static void *kept[KEPT];

static void *allocator_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < KEPT; i++) {
        kept[i] = zmalloc((size_t)(i % 2000) + 1);
        memset(kept[i], (int)(i & 0xff), (size_t)(i % 2000) + 1);
    }
    return NULL;
}

static void *freeing_thread(void *arg) {
    long half = (long)arg;
    for (int i = (int)half; i < KEPT; i += 2) {
        unsigned char *p = kept[i];
        if (p[0] != (unsigned char)(i & 0xff)) return (void *)1;
        zfree(p);
    }
    return NULL;
}

static pthread_key_t late_key;
static _Atomic int late_ran;

static void late_destructor(void *v) {
    /* Runs at thread exit, maybe after the pool's own destructor. */
    zfree(v);
    void *p = zmalloc(333);
    memset(p, 1, 333);
    zfree(p);
    atomic_fetch_add(&late_ran, 1);
}

static void *keyed_thread(void *arg) {
    (void)arg;
    void *p = zmalloc(100);
    pthread_setspecific(late_key, zmalloc(50));
    zfree(p);
    return NULL;
}

/* The parked-heap hand-over: worker 1 allocates and exits, a consumer
 * that has never allocated frees its blocks and stays alive (as a main
 * thread does), then worker 2 allocates. */
#define HANDED 300
static void *handed[HANDED];
static zp_heap *worker1_heap, *consumer_heap, *worker2_heap;
static _Atomic int consumer_done, worker2_done;

static void *handover_worker1(void *arg) {
    (void)arg;
    for (int i = 0; i < HANDED; i++) handed[i] = zmalloc(64);
    worker1_heap = zp_tl_heap;
    return NULL;
}

static void *handover_consumer(void *arg) {
    (void)arg;
    for (int i = 0; i < HANDED; i++) zfree(handed[i]);
    consumer_heap = zp_tl_heap;
    atomic_store(&consumer_done, 1);
    while (!atomic_load(&worker2_done)) sched_yield();
    return NULL;
}

static void *handover_worker2(void *arg) {
    (void)arg;
    void *p = zmalloc(64);
    worker2_heap = zp_tl_heap;
    zfree(p);
    return NULL;
}

static void test_parked_heap_goes_to_an_allocating_thread(void) {
    pthread_t w1, c, w2;
    pthread_create(&w1, NULL, handover_worker1, NULL);
    pthread_join(w1, NULL); /* parked now (the lot is not full: see below) */
    pthread_create(&c, NULL, handover_consumer, NULL);
    while (!atomic_load(&consumer_done)) sched_yield();
    pthread_create(&w2, NULL, handover_worker2, NULL);
    pthread_join(w2, NULL);
    atomic_store(&worker2_done, 1);
    pthread_join(c, NULL);
    CHECK(worker1_heap != NULL && consumer_heap != NULL);
    CHECK(consumer_heap != worker1_heap);
    CHECK(worker2_heap == worker1_heap);
}

/* A Larson generation: worker 1 allocates and exits; its successor frees
 * one of the blocks it inherited, then allocates. */
static zp_heap *successor_heap_before, *successor_heap_after;

static void *successor_thread(void *arg) {
    (void)arg;
    zfree(handed[0]);
    successor_heap_before = zp_tl_heap;
    for (int i = 1; i < HANDED; i++) {
        zfree(handed[i]);
        handed[i] = zmalloc(64);
    }
    successor_heap_after = zp_tl_heap;
    for (int i = 1; i < HANDED; i++) zfree(handed[i]);
    return NULL;
}

static void test_successor_that_frees_first_takes_the_parked_heap(void) {
    size_t base = zmalloc_used_memory();
    pthread_t w1, s;
    pthread_create(&w1, NULL, handover_worker1, NULL);
    pthread_join(w1, NULL); /* parked now */
    CHECK_EQ_SIZE(zmalloc_used_memory(), base + HANDED * zmalloc_size(handed[0]));
    pthread_create(&s, NULL, successor_thread, NULL);
    pthread_join(s, NULL);
    CHECK(successor_heap_before != NULL && successor_heap_before != &zp_empty_heap);
    CHECK(successor_heap_before != worker1_heap); /* its first call was a free */
    CHECK(successor_heap_after == worker1_heap);  /* traded at its first allocation */
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

int main(void) {
    CHECK(early_ok);
    int intact = 1;
    for (int i = 0; i < 100; i++) {
        unsigned char *p = early[i];
        for (int k = 0; k < i * 37 + 1; k++) intact &= p[k] == 0x11;
        zfree(p);
    }
    CHECK(intact);

    size_t base = zmalloc_used_memory();
    zm_be_stats st0;
    zm_be_get_stats(1, &st0);
    for (int round = 0; round < 20; round++) {
        pthread_t a, f1, f2;
        pthread_create(&a, NULL, allocator_thread, NULL);
        pthread_join(a, NULL); /* the owner is gone */
        void *r1, *r2;
        pthread_create(&f1, NULL, freeing_thread, (void *)0);
        pthread_create(&f2, NULL, freeing_thread, (void *)1);
        pthread_join(f1, &r1);
        pthread_join(f2, &r2);
        CHECK(r1 == NULL && r2 == NULL);
    }
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    zm_be_stats st1;
    zm_be_get_stats(1, &st1);
    CHECK_EQ_SIZE(st1.allocated, st0.allocated);
    /* 20 rounds of ~5 MiB each: reuse keeps resident near one round's worth. */
    CHECK(st1.resident < st0.resident + ((size_t)24 << 20));

    pthread_key_create(&late_key, late_destructor);
    for (int i = 0; i < 50; i++) {
        pthread_t t;
        pthread_create(&t, NULL, keyed_thread, NULL);
        pthread_join(t, NULL);
    }
    CHECK(atomic_load(&late_ran) == 50);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    zmalloc_purge();
    zm_be_stats st2;
    zm_be_get_stats(1, &st2);
    CHECK_EQ_SIZE(st2.allocated, st0.allocated);
    CHECK(st2.allocated <= st2.active && st2.active <= st2.resident);
    /* After zmalloc_purge() (which abandons every parked heap) the lot is
     * empty, then holds worker 1's heap alone. Parked heaps age out only
     * from allocation slow paths, and none runs between worker 1's exit
     * and worker 2's first allocation (the consumer only frees, main
     * waits), so no timing decides what worker 2 gets. */
    CHECK(zmalloc_get_option("pool_heap_park_max") >= 1);
    test_parked_heap_goes_to_an_allocating_thread();
    zmalloc_purge(); /* the lot empty again: worker 1's next heap is the one parked */
    test_successor_that_frees_first_takes_the_parked_heap();
    return test_summary("test_pool_thread_exit");
}
