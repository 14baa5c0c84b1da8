/* test_account.c: zmalloc_used_memory() is exact with threads.
 *
 * 8 threads allocate, hand half their blocks to a neighbour to free (every
 * such free is remote), free the rest, and exit; threads that never called
 * zmalloc and threads that only free are included. At each quiet point the
 * total must equal the baseline plus the live blocks, to the byte.
 */
#include <pthread.h>
#include <stdatomic.h>

#include "test.h"
#include "zmalloc.h"

enum { THREADS = 8, PER_THREAD = 20000 };

static void *handoff[THREADS][PER_THREAD];
static pthread_barrier_t barrier;
static _Atomic size_t live_bytes;

static void *worker(void *arg) {
    int id = (int)(long)arg;
    unsigned seed = (unsigned)id * 2654435761u;
    size_t mine = 0;
    for (int i = 0; i < PER_THREAD; i++) {
        seed = seed * 1103515245u + 12345u;
        size_t size = (seed >> 16) % 700;
        void *p = (i & 3) == 0 ? zcalloc(size) : zmalloc(size);
        mine += zmalloc_size(p);
        handoff[id][i] = p;
    }
    atomic_fetch_add(&live_bytes, mine);
    pthread_barrier_wait(&barrier); /* quiet point 1: main checks */
    pthread_barrier_wait(&barrier);
    /* Free the neighbour's odd blocks (remote) and our own even ones. */
    int next = (id + 1) % THREADS;
    for (int i = 0; i < PER_THREAD; i++) {
        if (i & 1)
            zfree(handoff[next][i]);
        else
            zfree(handoff[id][i]);
    }
    return NULL;
}

static void *idle_thread(void *arg) {
    (void)arg;
    return NULL; /* never touches zmalloc */
}

static void *alloc_and_exit(void *arg) {
    void **out = arg;
    *out = zmalloc(12345); /* lives on after this thread exits */
    return NULL;
}

static void *free_only(void *arg) {
    zfree(arg); /* first zmalloc call of this thread is a free */
    return NULL;
}

int main(void) {
    size_t base = zmalloc_used_memory();
    pthread_t t[THREADS];
    pthread_barrier_init(&barrier, NULL, THREADS + 1);
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    pthread_barrier_wait(&barrier);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base + atomic_load(&live_bytes));
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);

    pthread_t idle;
    pthread_create(&idle, NULL, idle_thread, NULL);
    pthread_join(idle, NULL);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);

    void *orphan = NULL;
    pthread_t a;
    pthread_create(&a, NULL, alloc_and_exit, &orphan);
    pthread_join(a, NULL);
    CHECK(orphan != NULL);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base + zmalloc_size(orphan));
    pthread_t f;
    pthread_create(&f, NULL, free_only, orphan);
    pthread_join(f, NULL);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);

    /* Many short-lived threads in waves: counters fold on exit. */
    for (int wave = 0; wave < 50; wave++) {
        void *blocks[16];
        pthread_t w[16];
        for (int i = 0; i < 16; i++) pthread_create(&w[i], NULL, alloc_and_exit, &blocks[i]);
        for (int i = 0; i < 16; i++) pthread_join(w[i], NULL);
        for (int i = 0; i < 16; i++) zfree(blocks[i]);
    }
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);

    /* fork: the child sees the same total and can allocate and free. */
    void *held = zmalloc(5000);
    size_t before = zmalloc_used_memory();
    pid_t pid = fork();
    if (pid == 0) {
        int ok = zmalloc_used_memory() == before;
        void *c = zmalloc(100);
        zfree(c);
        zfree(held);
        ok = ok && zmalloc_used_memory() == base;
        _exit(ok ? 0 : 1);
    }
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    zfree(held);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    return test_summary("test_account");
}
