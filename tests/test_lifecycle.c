/* test_lifecycle.c: accounting across thread exit, cross-thread frees and
 * fork is exact at quiet moments, and zmalloc_used_memory() is safe to call
 * from a signal handler that interrupts the library (lifecycle.c,
 * account.c; on the pool backend the pool's own counts).
 *
 *  - threads that exit holding blocks, blocks freed by other threads: the
 *    total is the sum of zmalloc_size() of what is live, exactly;
 *  - threads created and joined in waves (glibc reuses their stacks and
 *    TLS) and then all of their blocks freed: back to the baseline;
 *  - fork while other threads hold blocks: the child sees the parent's
 *    total, frees every block and is back to the baseline;
 *  - SIGUSR1 sent thousands of times to a thread that allocates, frees,
 *    starts threads and itself calls zmalloc_used_memory(): the handler
 *    calls zmalloc_used_memory() too. A lock in the reader deadlocks here
 *    (the alarm then kills the test).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"
#include "zmalloc.h"

#define THREADS 8
#define PER_THREAD 300

typedef struct job {
    void *blocks[PER_THREAD];
    size_t bytes; /* zmalloc_size of the blocks it leaves behind */
    unsigned seed;
} job;

static size_t size_for(unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    unsigned r = (*seed >> 8) % 100;
    if (r < 80) return 1 + (*seed >> 4) % 512;
    if (r < 98) return 512 + (*seed >> 4) % 20000;
    return 300000 + (*seed >> 4) % 200000; /* huge on the pool */
}

/* Allocates, frees half itself, leaves half for the main thread. */
static void *worker(void *arg) {
    job *j = arg;
    j->bytes = 0;
    for (int i = 0; i < PER_THREAD; i++) {
        void *p = zmalloc(size_for(&j->seed));
        if (i & 1) {
            zfree(p);
            j->blocks[i] = NULL;
        } else {
            j->blocks[i] = p;
            j->bytes += zmalloc_size(p);
        }
    }
    return NULL;
}

static void free_job(job *j) {
    for (int i = 0; i < PER_THREAD; i++) zfree(j->blocks[i]);
}

static void test_thread_exit_and_remote_frees(void) {
    size_t base = zmalloc_used_memory();
    static job jobs[THREADS];
    for (int wave = 0; wave < 20; wave++) {
        pthread_t t[THREADS];
        size_t expect = 0;
        for (int i = 0; i < THREADS; i++) {
            jobs[i].seed = (unsigned)(wave * 131 + i + 1);
            pthread_create(&t[i], NULL, worker, &jobs[i]);
        }
        for (int i = 0; i < THREADS; i++) {
            pthread_join(t[i], NULL);
            expect += jobs[i].bytes;
        }
        /* Every thread has exited holding its blocks. */
        CHECK_EQ_SIZE(zmalloc_used_memory(), base + expect);
        for (int i = 0; i < THREADS; i++) free_job(&jobs[i]);
        CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    }
}

/* Fork while THREADS threads are alive, each holding its blocks. */
static pthread_barrier_t ready, done;
static void *holder(void *arg) {
    worker(arg);
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&done);
    return NULL;
}

static void test_fork(void) {
    size_t base = zmalloc_used_memory();
    static job jobs[THREADS];
    pthread_t t[THREADS];
    pthread_barrier_init(&ready, NULL, THREADS + 1);
    pthread_barrier_init(&done, NULL, THREADS + 1);
    for (int i = 0; i < THREADS; i++) {
        jobs[i].seed = (unsigned)(7000 + i);
        pthread_create(&t[i], NULL, holder, &jobs[i]);
    }
    pthread_barrier_wait(&ready);
    size_t expect = base;
    for (int i = 0; i < THREADS; i++) expect += jobs[i].bytes;
    size_t at_fork = zmalloc_used_memory();
    CHECK_EQ_SIZE(at_fork, expect);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int bad = zmalloc_used_memory() != at_fork;
        /* The other threads are gone: their blocks are ours to free. */
        for (int i = 0; i < THREADS; i++) free_job(&jobs[i]);
        bad |= (zmalloc_used_memory() != base) << 1;
        /* And the child keeps working, threads included (not under TSan,
         * which cannot start threads after a multi-threaded fork). */
#if !defined(__SANITIZE_THREAD__)
        static job again;
        again.seed = 99;
        pthread_t c;
        pthread_create(&c, NULL, worker, &again);
        pthread_join(c, NULL);
        free_job(&again);
        bad |= (zmalloc_used_memory() != base) << 2;
#endif
        _exit(bad);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status));
    CHECK_EQ_SIZE(WEXITSTATUS(status), 0);
    pthread_barrier_wait(&done);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < THREADS; i++) free_job(&jobs[i]);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

/* ---- the reader from a signal handler ----------------------------------- */

static _Atomic size_t handler_reads;
static _Atomic size_t handler_sum; /* keeps the reads from being optimised out */
static void on_usr1(int sig) {
    (void)sig;
    atomic_fetch_add(&handler_sum, zmalloc_used_memory());
    atomic_fetch_add(&handler_reads, 1);
}

static _Atomic int busy_stop;
static void *short_thread(void *arg) {
    void *p = zmalloc(100);
    zfree(arg);
    zfree(p);
    return NULL;
}

static void *busy(void *arg) {
    (void)arg;
    unsigned seed = 5;
    void *keep[64] = {0};
    while (!atomic_load(&busy_stop)) {
        for (int i = 0; i < 64; i++) {
            zfree(keep[i]);
            keep[i] = zmalloc(size_for(&seed));
        }
        atomic_fetch_add(&handler_sum, zmalloc_used_memory());
        /* Registration and exit paths run in other threads; their blocks
         * are freed there (remote frees). */
        pthread_t t;
        if (pthread_create(&t, NULL, short_thread, zmalloc(64)) == 0) pthread_join(t, NULL);
    }
    for (int i = 0; i < 64; i++) zfree(keep[i]);
    return NULL;
}

static void test_signal_reader(void) {
    size_t base = zmalloc_used_memory();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    pthread_t t;
    pthread_create(&t, NULL, busy, NULL);
    int sent = 0;
    for (; sent < 20000; sent++) {
        pthread_kill(t, SIGUSR1);
        if (sent % 64 == 0) sched_yield();
    }
    /* Wait for the last signals to be handled. */
    while (atomic_load(&handler_reads) == 0) sched_yield();
    atomic_store(&busy_stop, 1);
    pthread_join(t, NULL);
    CHECK(atomic_load(&handler_reads) > 0);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    signal(SIGUSR1, SIG_DFL);
}

int main(void) {
    alarm(240); /* a deadlocked reader fails the test instead of hanging it */
    test_thread_exit_and_remote_frees();
    test_fork();
    test_signal_reader();
    return test_summary("test_lifecycle");
}
