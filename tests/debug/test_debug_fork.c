/* test_debug_fork.c: fork() in verification mode while other threads free
 * blocks of 1-4 MiB (issue 12, item 2).
 *
 * Such blocks are larger than the quarantine, so the debug layer gives them
 * straight back to the backend; on the pool that takes the segment lock of
 * the huge-block code. A debug layer that did so while holding its own lock
 * could deadlock fork(): the fork handlers take the layers' locks in order,
 * and a thread holding the debug lock while it waits for the backend's
 * (taken by the prepare handler) never lets go. Eviction of smaller blocks
 * from the quarantine is exercised at the same time. The child allocates
 * and frees (every lock must be usable there) and exits; 1000 forks must
 * all finish well within the alarm.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>

#include "test.h"
#include "zmalloc.h"

#define WORKERS 2
#define FORKS 1000

static _Atomic int stop;
static _Atomic long freed_big;

static void *worker(void *arg) {
    uint64_t s = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        size_t big = ((size_t)1 << 20) + (size_t)(s % (3u << 20)); /* 1-4 MiB */
        char *p = zmalloc(big);
        p[0] = p[big - 1] = 1;
        /* A few small blocks too: their frees fill the quarantine and
         * evict from it. */
        void *small[8];
        for (int i = 0; i < 8; i++)
            small[i] = zmalloc(16 + (size_t)((s >> (8 * i)) & 1023));
        zfree(p);
        for (int i = 0; i < 8; i++)
            zfree(small[i]);
        atomic_fetch_add_explicit(&freed_big, 1, memory_order_relaxed);
    }
    return NULL;
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "test_debug_fork: fork did not finish in time (deadlock?)\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    _exit(3);
}

int main(void) {
    signal(SIGALRM, on_alarm);
    alarm(240);
    pthread_t th[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)(i + 1));
    while (atomic_load(&freed_big) < 10)
        sched_yield();
    int children_ok = 0;
    for (int i = 0; i < FORKS; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(30);
            char *p = zmalloc((size_t)2 << 20);
            void *q = zmalloc(100);
            zfree(p);
            zfree(q);
            _exit(zmalloc_verify() == 0 ? 0 : 1);
        }
        int status;
        if (pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
            WEXITSTATUS(status) == 0)
            children_ok++;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++)
        pthread_join(th[i], NULL);
    alarm(0);
    CHECK_EQ_SIZE(children_ok, FORKS);
    CHECK(atomic_load(&freed_big) > FORKS / 10); /* the workers ran during the forks */
    CHECK_EQ_SIZE(zmalloc_verify(), 0);
    return test_summary("test_debug_fork");
}
