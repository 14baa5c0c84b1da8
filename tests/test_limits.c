/* test_limits.c: memory limit, reclaim-and-retry, and real allocation
 * failure under RLIMIT_AS (issue 5), on whichever backend this build uses.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/resource.h>

#include "test.h"
#include "zmalloc.h"

/* A reserve the reclaim handler frees from, as Redis would evict keys. */
enum { RESERVE_MAX = 4096 };
static void *reserve[RESERVE_MAX];
static int reserve_count;
static int reclaim_calls;
static int events[64], nevents; /* 1 = reclaim, 2 = oom, in call order */

static size_t free_reserve(size_t needed) {
    reclaim_calls++;
    if (nevents < 64) events[nevents++] = 1;
    size_t freed = 0;
    while (reserve_count > 0 && freed < needed) {
        void *p = reserve[--reserve_count];
        freed += zmalloc_size(p);
        zfree(p);
    }
    return freed;
}

static size_t allocating_handler(size_t needed) {
    (void)needed;
    reclaim_calls++;
    /* An allocation inside the handler must not call the handler again;
     * over the limit it fails instead of recursing. */
    void *p = ztrymalloc(1 << 20);
    zfree(p);
    return 0;
}

static void record_oom(size_t size) {
    (void)size;
    if (nevents < 64) events[nevents++] = 2;
}

static void test_limit_single_thread(void) {
    size_t base = zmalloc_used_memory();
    size_t limit = base + (4u << 20);
    zmalloc_set_memory_limit(limit);
    CHECK_EQ_SIZE(zmalloc_get_memory_limit(), limit);
    void *blocks[1000];
    int n = 0;
    while (n < 1000) {
        void *p = ztrymalloc(10000);
        if (!p) break;
        blocks[n++] = p;
        /* One thread: the limit is exact. */
        CHECK(zmalloc_used_memory() <= limit);
    }
    CHECK(n > 300 && n < 1000);
    errno = 0;
    CHECK(ztrymalloc(10000) == NULL && errno == ENOMEM);
    CHECK(ztrycalloc(10000) == NULL);
    /* Growing a block past the limit fails and keeps it. */
    void *grown = ztryrealloc(blocks[0], 1 << 20);
    CHECK(grown == NULL);
    memset(blocks[0], 3, 10000);
    /* z* calls the OOM handler. */
    nevents = 0;
    zmalloc_set_oom_handler(record_oom);
    CHECK(zmalloc(10000) == NULL);
    CHECK(nevents == 1 && events[0] == 2);
    zmalloc_set_oom_handler(NULL);
    /* Small requests still fit in what is left. */
    void *small = ztrymalloc(16);
    CHECK(small != NULL);
    zfree(small);
    for (int i = 0; i < n; i++) zfree(blocks[i]);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    void *again = ztrymalloc(10000); /* room again after the frees */
    CHECK(again != NULL);
    zfree(again);
    zmalloc_set_memory_limit(0);
    CHECK_EQ_SIZE(zmalloc_get_memory_limit(), 0);
    void *big = ztrymalloc(64u << 20);
    CHECK(big != NULL);
    zfree(big);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

static void test_reclaim(void) {
    size_t base = zmalloc_used_memory();
    for (reserve_count = 0; reserve_count < 200; reserve_count++) reserve[reserve_count] = zmalloc(10000);
    size_t limit = zmalloc_used_memory() + 50000;
    zmalloc_set_memory_limit(limit);
    zmalloc_set_reclaim_handler(free_reserve);
    reclaim_calls = 0;
    /* 1 MiB does not fit; the handler frees the reserve until it does. */
    void *p = ztrymalloc(1 << 20);
    CHECK(p != NULL);
    CHECK(reclaim_calls >= 1 && reclaim_calls <= ZMALLOC_RECLAIM_ROUNDS);
    CHECK(zmalloc_used_memory() <= limit);
    zfree(p);
    /* Nothing left to reclaim: fails after the handler said 0. */
    while (reserve_count) zfree(reserve[--reserve_count]);
    reclaim_calls = 0;
    CHECK(ztrymalloc(limit + 1) == NULL);
    CHECK(reclaim_calls == 1);
    /* A handler that allocates does not recurse. */
    zmalloc_set_reclaim_handler(allocating_handler);
    reclaim_calls = 0;
    CHECK(ztrymalloc(limit + 1) == NULL);
    CHECK(reclaim_calls == 1);
    zmalloc_set_reclaim_handler(NULL);
    zmalloc_set_memory_limit(0);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

/* T threads race against one limit: the total may pass it by at most
 * T * ZMALLOC_LIMIT_SLACK (zmalloc.h). */
enum { T = 4 };
static _Atomic size_t max_seen;
static size_t shared_limit;
static pthread_barrier_t barrier;

static void *racer(void *arg) {
    (void)arg;
    void *mine[4000];
    int n = 0;
    pthread_barrier_wait(&barrier);
    while (n < 4000) {
        void *p = ztrymalloc(4000);
        if (!p) break;
        mine[n++] = p;
    }
    size_t used = zmalloc_used_memory();
    size_t prev = atomic_load(&max_seen);
    while (used > prev && !atomic_compare_exchange_weak(&max_seen, &prev, used)) {
    }
    pthread_barrier_wait(&barrier); /* all stopped: main reads the quiet total */
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < n; i++) zfree(mine[i]);
    return NULL;
}

static void test_limit_threads(void) {
    size_t base = zmalloc_used_memory();
    shared_limit = base + (8u << 20);
    zmalloc_set_memory_limit(shared_limit);
    pthread_t t[T];
    pthread_barrier_init(&barrier, NULL, T + 1);
    for (int i = 0; i < T; i++) pthread_create(&t[i], NULL, racer, NULL);
    pthread_barrier_wait(&barrier);
    pthread_barrier_wait(&barrier);
    size_t quiet = zmalloc_used_memory();
    pthread_barrier_wait(&barrier);
    for (int i = 0; i < T; i++) pthread_join(t[i], NULL);
    printf("  limit %zu, quiet total %zu (over by %zd), bound %zu\n", shared_limit, quiet,
           (ssize_t)(quiet - shared_limit), (size_t)T * ZMALLOC_LIMIT_SLACK);
    CHECK(quiet <= shared_limit + T * ZMALLOC_LIMIT_SLACK);
    CHECK(quiet >= shared_limit - 4 * 8192); /* the threads did fill it */
    CHECK(atomic_load(&max_seen) <= shared_limit + T * ZMALLOC_LIMIT_SLACK);
    zmalloc_set_memory_limit(0);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

/* A limit set by another thread while this one is allocating: the fast
 * path tests no limit, and a running thread sees one at its next slow path
 * (sample.c: within ZMALLOC_LIMIT_SLACK / 16 requested bytes). 1-byte
 * requests are the worst case (16 bytes charged for 1 requested), so the
 * total may pass the limit by at most ZMALLOC_LIMIT_SLACK. Then 0-byte
 * requests on the setting thread itself: exact. */
enum { SEEN_MAX = 1 << 20 }; /* 1-byte blocks charge 1 byte where the size query is exact (ASan) */
static void *seen_blocks[SEEN_MAX];
static int seen_n;
static size_t seen_limit, seen_used;

static void *limit_watcher(void *arg) {
    (void)arg;
    /* Warm up: this thread's countdown is armed, its pages are there. */
    for (int i = 0; i < 100000; i++) zfree(zmalloc(1 + i % 200));
    pthread_barrier_wait(&barrier); /* main sets the limit */
    pthread_barrier_wait(&barrier);
    while (seen_n < SEEN_MAX) {
        void *p = ztrymalloc(1);
        if (!p) break;
        seen_blocks[seen_n++] = p;
    }
    seen_used = zmalloc_used_memory();
    return NULL;
}

static void test_limit_set_elsewhere(void) {
    size_t base = zmalloc_used_memory();
    pthread_t t;
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_create(&t, NULL, limit_watcher, NULL);
    pthread_barrier_wait(&barrier);
    seen_limit = zmalloc_used_memory() + (256u << 10);
    zmalloc_set_memory_limit(seen_limit);
    pthread_barrier_wait(&barrier);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&barrier);
    printf("  limit set by another thread: %d 1-byte blocks, total %zu, limit %zu (over by %zd, bound %zu)\n",
           seen_n, seen_used, seen_limit, (ssize_t)(seen_used - seen_limit), (size_t)ZMALLOC_LIMIT_SLACK);
    CHECK(seen_n < SEEN_MAX);
    CHECK(seen_used <= seen_limit + ZMALLOC_LIMIT_SLACK);
    CHECK(seen_used >= seen_limit - 64); /* it did fill the limit */
    for (int i = 0; i < seen_n; i++) zfree(seen_blocks[i]);
    seen_n = 0;
    /* 0-byte requests (a unique block each, charged) on this thread. */
    size_t limit = zmalloc_used_memory() + 65536;
    zmalloc_set_memory_limit(limit);
    while (seen_n < SEEN_MAX) {
        void *p = ztrymalloc(0);
        if (!p) break;
        seen_blocks[seen_n++] = p;
        CHECK(zmalloc_used_memory() <= limit);
    }
    CHECK(seen_n > 0 && seen_n < SEEN_MAX);
    for (int i = 0; i < seen_n; i++) zfree(seen_blocks[i]);
    seen_n = 0;
    zmalloc_set_memory_limit(0);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
}

/* Real failure: the address space is capped in a child. Not under ASan or
 * TSan, whose shadow memory needs terabytes of address space. */
static void test_rlimit_as(void) {
    if (malloc_replaced_by_tool()) {
        printf("  rlimit test skipped under a sanitizer or valgrind\n");
        return;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        int fails = 0;
        long long vsize;
        if (!get_proc_stat_ll(23, &vsize)) _exit(10);
        struct rlimit rl = {(rlim_t)vsize + (256u << 20), (rlim_t)vsize + (256u << 20)};
        if (setrlimit(RLIMIT_AS, &rl) != 0) _exit(11);
        size_t base = zmalloc_used_memory();
        static void *blocks[4096];
        int n = 0;
        while (n < 4096) {
            void *p = ztrymalloc(1u << 20);
            if (!p) break;
            memset(p, 1, 4096);
            blocks[n++] = p;
        }
        if (n == 4096 || n < 50) fails |= 1; /* must hit the cap */
        if (errno != ENOMEM) fails |= 2;
        /* Accounting stayed exact through the failure. */
        size_t sum = 0;
        for (int i = 0; i < n; i++) sum += zmalloc_size(blocks[i]);
        if (zmalloc_used_memory() != base + sum) fails |= 4;
        /* The reclaim handler runs before the OOM handler and can save
         * the allocation by freeing. */
        for (int i = 0; i < n && reserve_count < RESERVE_MAX; i++) reserve[reserve_count++] = blocks[i];
        n = 0;
        zmalloc_set_reclaim_handler(free_reserve);
        zmalloc_set_oom_handler(record_oom);
        nevents = 0;
        /* The same size that just failed: the freed blocks make room on
         * every backend (jemalloc keeps freed address space for reuse). */
        void *saved = zmalloc(1u << 20);
        if (!saved || nevents < 1 || events[0] != 1) fails |= 8;
        zfree(saved);
        /* With nothing left to reclaim: reclaim first, then OOM. */
        while (reserve_count) zfree(reserve[--reserve_count]);
        nevents = 0;
        void *impossible = zmalloc(1u << 30);
        if (impossible || nevents != 2 || events[0] != 1 || events[1] != 2) fails |= 16;
        /* The heap still works and balances. */
        void *p = zmalloc(100);
        zfree(p);
        if (zmalloc_used_memory() != base) fails |= 32;
        _exit(fails);
    }
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fprintf(stderr, "  rlimit child status %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

int main(void) {
    test_limit_single_thread();
    test_reclaim();
    test_limit_threads();
    test_limit_set_elsewhere();
    test_rlimit_as();
    return test_summary("test_limits");
}
