/* test_lifecycle_nokey.c: pthread_key_create fails (this program's own
 * definition interposes the library's call). lifecycle.c must report it,
 * and every layer must stay correct without thread-exit hooks: a thread's
 * accounting slot is then kept for good, never reused, so threads created
 * in waves (glibc reuses their stacks and thread-local storage) cannot link
 * a slot twice, and the totals stay exact. Checked through the public API
 * and, on every backend, through the registry itself (account.h), which
 * the pool backend's front end does not otherwise use. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "account.h"
#include "lifecycle.h"
#include "test.h"
#include "zmalloc.h"

/* Sanitizer runtimes intercept pthread_key_create themselves and call it
 * before they can run our definition: there the test says it is skipped. */
#ifdef UNDER_SANITIZER
int main(void) {
    printf("test_lifecycle_nokey: skipped under a sanitizer\n");
    return test_summary("test_lifecycle_nokey");
}
#else
static _Atomic int key_calls;
static _Atomic int fail_keys = 1;

/* Only calls made from this executable fail: that is where the static
 * libzmalloc is. The backend's own calls (jemalloc, tcmalloc and mimalloc
 * create keys too, from their shared libraries) go through. */
static int called_from_here(void *ra) {
    Dl_info here, caller;
    return dladdr((void *)&called_from_here, &here) && dladdr(ra, &caller) &&
           here.dli_fbase == caller.dli_fbase;
}

int pthread_key_create(pthread_key_t *key, void (*destructor)(void *)) {
    if (called_from_here(__builtin_return_address(0))) {
        atomic_fetch_add(&key_calls, 1);
        if (atomic_load(&fail_keys)) return EAGAIN;
    }
    int (*real)(pthread_key_t *, void (*)(void *)) =
        (int (*)(pthread_key_t *, void (*)(void *)))dlsym(RTLD_NEXT, "pthread_key_create");
    return real ? real(key, destructor) : EAGAIN;
}

#define PER 200
typedef struct job {
    void *blocks[PER];
    size_t bytes;
} job;

static void *worker(void *arg) {
    job *j = arg;
    j->bytes = 0;
    for (int i = 0; i < PER; i++) {
        void *p = zmalloc(16 + (size_t)i * 37 % 3000);
        if (i % 3 == 0) {
            zfree(p);
            j->blocks[i] = NULL;
        } else {
            j->blocks[i] = p;
            j->bytes += zmalloc_size(p);
        }
    }
    /* The registry directly: +1000 here, -1000 by the main thread. */
    zm_account_add(1000);
    return NULL;
}

int main(void) {
    long long acct_base = zm_account_total();
    size_t base = zmalloc_used_memory();
    job jobs[4];
    for (int wave = 0; wave < 50; wave++) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++) CHECK(pthread_create(&t[i], NULL, worker, &jobs[i]) == 0);
        size_t expect = base;
        for (int i = 0; i < 4; i++) {
            pthread_join(t[i], NULL);
            expect += jobs[i].bytes;
            zm_account_add(-1000);
        }
        CHECK_EQ_SIZE(zmalloc_used_memory(), expect);
        for (int i = 0; i < 4; i++)
            for (int k = 0; k < PER; k++) zfree(jobs[i].blocks[k]);
        CHECK_EQ_SIZE(zmalloc_used_memory(), base);
        /* Whatever the front end keeps there is back to 0 too. */
        CHECK(zm_account_total() == acct_base);
    }
    /* The library did ask for a key, was told no, and says so. */
    CHECK(atomic_load(&key_calls) >= 1);
    CHECK(zm_lifecycle_ready() == 0);
    /* One attempt only: the failure is final, not retried per thread. */
    CHECK(atomic_load(&key_calls) == 1);
    /* fork still works (the fork hooks do not need the key). */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        void *p = zmalloc(1000);
        zfree(p);
        _exit(zmalloc_used_memory() == base ? 0 : 1);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return test_summary("test_lifecycle_nokey");
}
#endif
