/* test_lifecycle_fork.c: a fork in the middle of lifecycle set-up.
 *
 * The first thread that needs an exit hook creates the pthread key and
 * registers the fork handlers (lifecycle.c). If another thread forks while
 * that thread is still inside pthread_key_create, the child inherits
 * "set-up running" from a thread it does not have. Before the fix the
 * child's first allocation then waited for that thread for ever (seen as a
 * 300 s timeout of test_debug_heavy, about 1 run in 20).
 *
 * Made deterministic here: this program's own pthread_key_create (it
 * interposes the library's call, as test_lifecycle_nokey does) holds the
 * first call from the library until the main thread has forked. The child
 * (with an alarm, so a hang fails instead of blocking make test) must:
 *   - allocate and free, with set-up finished (zm_lifecycle_ready);
 *   - run a thread that allocates and exits (its exit hook runs);
 *   - fork again, and its child allocate: the fork handlers are
 *     registered once (twice, the second prepare would wait for a lock the
 *     first took, and that fork would never return);
 *   - end with zmalloc_used_memory() where it started.
 * Then the parent lets the held thread go on, and checks the same.
 * Children report through a pipe, not their exit status: under valgrind a
 * child's exit status is valgrind's, and each child does leak the block the
 * held thread was allocating (that thread does not exist there).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lifecycle.h"
#include "test.h"
#include "zmalloc.h"

/* Sanitizer runtimes intercept pthread_key_create themselves and call it
 * before they can run our definition: there the test says it is skipped. */
#ifdef UNDER_SANITIZER
int main(void) {
    printf("test_lifecycle_fork: skipped under a sanitizer\n");
    return test_summary("test_lifecycle_fork");
}
#else
static _Atomic int key_calls;  /* calls made by the library            */
static _Atomic int holding;    /* the first call is waiting             */
static _Atomic int may_go;     /* the main thread has forked            */

static int called_from_here(void *ra) {
    Dl_info here, caller;
    return dladdr((void *)&called_from_here, &here) && dladdr(ra, &caller) &&
           here.dli_fbase == caller.dli_fbase;
}

int pthread_key_create(pthread_key_t *key, void (*destructor)(void *)) {
    if (called_from_here(__builtin_return_address(0)) && atomic_fetch_add(&key_calls, 1) == 0) {
        atomic_store(&holding, 1);
        while (!atomic_load(&may_go)) usleep(1000);
    }
    int (*real)(pthread_key_t *, void (*)(void *)) =
        (int (*)(pthread_key_t *, void (*)(void *)))dlsym(RTLD_NEXT, "pthread_key_create");
    return real ? real(key, destructor) : EAGAIN;
}

static void *first_user(void *arg) {
    (void)arg;
    void *p = zmalloc(100); /* attaches: set-up starts here and is held */
    zfree(p);
    return NULL;
}

static void *short_thread(void *arg) {
    (void)arg;
    for (int i = 0; i < 100; i++) zfree(zmalloc(16 + (size_t)i * 24));
    return NULL;
}

/* Allocation works, threads come and go, and a fork from here works too.
 * Returns a bit set of what failed (0: all well). */
static int exercise(size_t base) {
    int bad = 0;
    void *p = zmalloc(1000);
    if (!p) bad |= 1;
    zfree(p);
    if (zm_lifecycle_ready() != 1) bad |= 2;
    pthread_t t;
    if (pthread_create(&t, NULL, short_thread, NULL) != 0 || pthread_join(t, NULL) != 0) bad |= 4;
    fflush(NULL);
    int fd[2];
    if (pipe(fd) != 0) return bad | 8;
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30);
        close(fd[0]);
        void *q = zmalloc(500);
        zfree(q);
        char ok = q ? 'k' : 'x';
        (void)!write(fd[1], &ok, 1);
        _exit(0);
    }
    close(fd[1]);
    char got = 0;
    if (pid < 0 || read(fd[0], &got, 1) != 1 || got != 'k') bad |= 8;
    close(fd[0]);
    if (pid > 0) waitpid(pid, NULL, 0);
    if (zmalloc_used_memory() != base) bad |= 16;
    return bad;
}

int main(void) {
    size_t base = zmalloc_used_memory(); /* reads a counter; no set-up */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, first_user, NULL) == 0);
    while (!atomic_load(&holding)) usleep(1000);
    CHECK(zm_lifecycle_ready() == 0); /* set-up is in progress */
    fflush(NULL);
    int fd[2];
    CHECK(pipe(fd) == 0);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(30); /* a hang is a failure, not a stuck make test */
        close(fd[0]);
        unsigned char r = (unsigned char)exercise(base);
        (void)!write(fd[1], &r, 1);
        _exit(0);
    }
    CHECK(pid > 0);
    close(fd[1]);
    unsigned char result = 0xff;
    ssize_t n = read(fd[0], &result, 1); /* EOF: the child died first */
    close(fd[0]);
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    if (WIFSIGNALED(st)) printf("test_lifecycle_fork: child killed by signal %d\n", WTERMSIG(st));
    CHECK(n == 1);
    if (n == 1 && result != 0) printf("test_lifecycle_fork: child failed checks 0x%x\n", result);
    CHECK(n == 1 && result == 0);
    /* The child's calls count in its own copy: here, the held one only. */
    CHECK(atomic_load(&key_calls) == 1);
    atomic_store(&may_go, 1);
    CHECK(pthread_join(t, NULL) == 0);
    CHECK(zm_lifecycle_ready() == 1);
    CHECK(atomic_load(&key_calls) == 1);
    CHECK(exercise(base) == 0);
    return test_summary("test_lifecycle_fork");
}
#endif
