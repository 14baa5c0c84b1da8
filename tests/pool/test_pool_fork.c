/* test_pool_fork.c: fork() while other threads allocate and free. The
 * child allocates, frees its own blocks and blocks the (now absent) other
 * threads allocated, checks contents, and exits 0. Repeated, so a fork lands
 * in the middle of slow paths too. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/wait.h>

#include "test.h"
#include "zmalloc.h"

#define WORKERS 3
#define SHARED 1024
static _Atomic int stop;
static unsigned char *_Atomic shared[SHARED];

static void *worker(void *arg) {
    uint64_t s = (uintptr_t)arg * 2654435761u + 1;
    while (!atomic_load(&stop)) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        size_t n = 16 + s % 3000;
        if (s % 97 == 0) n = 300000 + s % 100000;
        unsigned char *p = zmalloc(n);
        memset(p, (int)(n & 0xff), n);
        p[0] = (unsigned char)(n & 0xff);
        memcpy(p + 1, &n, sizeof n);
        unsigned char *old = atomic_exchange(&shared[s % SHARED], p);
        if (old) zfree(old);
    }
    return NULL;
}

static int check_block(const unsigned char *p) {
    size_t n;
    memcpy(&n, p + 1, sizeof n);
    if (n < 16 || n > 500000) return 0;
    for (size_t i = 1 + sizeof n; i < n; i++)
        if (p[i] != (unsigned char)(n & 0xff)) return 0;
    return 1;
}

static int child_work(void) {
    int ok = 1;
    void *mine[2000];
    for (int i = 0; i < 2000; i++) {
        mine[i] = zmalloc((size_t)(i % 700) + 1);
        memset(mine[i], 0x5a, (size_t)(i % 700) + 1);
    }
    /* Blocks owned by threads that do not exist here. */
    for (int i = 0; i < SHARED; i++) {
        unsigned char *p = atomic_exchange(&shared[i], NULL);
        if (!p) continue;
        if (!check_block(p)) ok = 0;
        zfree(p);
    }
    for (int i = 0; i < 2000; i++) zfree(mine[i]);
    for (int i = 0; i < 10000; i++) zfree(zmalloc((size_t)(i % 5000) + 1));
    void *big = zmalloc(5 << 20);
    memset(big, 1, 5 << 20);
    zfree(big);
    return ok;
}

int main(void) {
    pthread_t t[WORKERS];
    for (long i = 0; i < WORKERS; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    int forks = 0, children_ok = 0;
    for (int round = 0; round < 40; round++) {
        usleep(2000);
        pid_t pid = fork();
        if (pid == 0) _exit(child_work() ? 0 : 3);
        if (pid < 0) continue;
        forks++;
        int status;
        waitpid(pid, &status, 0);
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) children_ok++;
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < WORKERS; i++) pthread_join(t[i], NULL);
    CHECK(forks == 40);
    CHECK_EQ_SIZE(children_ok, forks);
    /* The parent still works and its shared blocks are intact. */
    for (int i = 0; i < SHARED; i++) {
        unsigned char *p = atomic_exchange(&shared[i], NULL);
        if (!p) continue;
        CHECK(check_block(p));
        zfree(p);
    }
    return test_summary("test_pool_fork");
}
