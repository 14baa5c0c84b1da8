/* test_debug_heavy.c: a clean, busy program gets no reports in
 * verification mode, and the accounting balances to the byte.
 *
 * 8 threads allocate blocks of many sizes (zmalloc, zcalloc, zrealloc
 * growing and shrinking, aligned up to 1 MiB, zstrdup), each filled with a
 * tag the owner checks, and hand every fourth block to the next thread
 * through a mailbox, so frees cross threads. Afterwards zmalloc_verify()
 * finds nothing and zmalloc_used_memory() is back at its starting value.
 * A fork in the middle checks that the child can still allocate.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "test.h"
#include "zmalloc.h"

#define THREADS 8
#define ROUNDS 20000
#define SLOTS 256

typedef struct {
    void *_Atomic box[64]; /* blocks handed to this thread */
} mailbox;

static mailbox mail[THREADS];
static _Atomic int bad_content;

static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static size_t pick_size(uint64_t *r) {
    uint64_t x = next_rand(r);
    switch (x & 7) {
    case 0: return 0;
    case 1: return 1 + (x >> 8) % 16;
    case 2:
    case 3:
    case 4: return 16 + (x >> 8) % 512;
    case 5: return 512 + (x >> 8) % 8192;
    case 6: return 8192 + (x >> 8) % 100000;
    default: return (x >> 8) % 64;
    }
}

/* Blocks start with their size and a tag byte pattern after it. */
static void tag(unsigned char *p, size_t n, unsigned char t) {
    memset(p, t, n);
}

static int tag_ok(const unsigned char *p, size_t n, unsigned char t) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != t) return 0;
    return 1;
}

static void drain_mailbox(int me) {
    for (int i = 0; i < 64; i++) {
        void *p = atomic_exchange(&mail[me].box[i], NULL);
        if (p) zfree(p);
    }
}

static void *worker(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t r = 0x9E3779B97F4A7C15ull * (uint64_t)(me + 1);
    unsigned char *slot[SLOTS] = {0};
    size_t len[SLOTS] = {0};
    for (int round = 0; round < ROUNDS; round++) {
        int i = (int)(next_rand(&r) % SLOTS);
        unsigned char t = (unsigned char)(i + 1);
        if (slot[i]) {
            if (!tag_ok(slot[i], len[i], t)) atomic_fetch_add(&bad_content, 1);
            uint64_t what = next_rand(&r) % 8;
            if (what == 0) {
                /* grow or shrink; the kept prefix must survive */
                size_t n = pick_size(&r);
                unsigned char *q = zrealloc(slot[i], n);
                if (n == 0) { /* zrealloc(p, 0) frees */
                    slot[i] = NULL;
                    continue;
                }
                size_t keep = len[i] < n ? len[i] : n;
                if (!tag_ok(q, keep, t)) atomic_fetch_add(&bad_content, 1);
                slot[i] = q;
                len[i] = n;
                tag(q, n, t);
                continue;
            }
            if (what <= 2) {
                /* give it to the next thread, which frees it */
                int to = (me + 1) % THREADS;
                void *old = atomic_exchange(&mail[to].box[i % 64], slot[i]);
                if (old) zfree(old);
            } else {
                zfree(slot[i]);
            }
            slot[i] = NULL;
            continue;
        }
        size_t n = pick_size(&r);
        uint64_t how = next_rand(&r) % 10;
        unsigned char *p;
        if (how == 0) {
            p = zcalloc(n);
            if (!tag_ok(p, n, 0)) atomic_fetch_add(&bad_content, 1);
        } else if (how == 1) {
            size_t align = (size_t)1 << (3 + next_rand(&r) % 18); /* 8 B .. 1 MiB */
            p = zmalloc_aligned(align, n);
            if ((uintptr_t)p & (align - 1)) atomic_fetch_add(&bad_content, 1);
        } else if (how == 2) {
            size_t usable;
            p = ztrymalloc_usable(n, &usable);
            if (usable != (n ? n : sizeof(long))) atomic_fetch_add(&bad_content, 1);
        } else {
            p = zmalloc(n);
        }
        if (zmalloc_usable_size(p) != (n ? n : sizeof(long))) atomic_fetch_add(&bad_content, 1);
        tag(p, n, t);
        slot[i] = p;
        len[i] = n;
        if ((round & 1023) == 0) drain_mailbox(me);
    }
    for (int i = 0; i < SLOTS; i++)
        zfree(slot[i]);
    return NULL;
}

static void child_allocates(void *arg) {
    (void)arg;
    char *s = zstrdup("after fork");
    int ok = strcmp(s, "after fork") == 0 && zmalloc_verify() == 0;
    zfree(s);
    _exit(ok ? 0 : 1);
}

static void *forker(void *arg) {
    (void)arg;
    for (int i = 0; i < 5; i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) child_allocates(NULL);
        int status;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) atomic_fetch_add(&bad_content, 1);
        usleep(10000);
    }
    return NULL;
}

int main(void) {
    size_t base = zmalloc_used_memory();
    pthread_t th[THREADS], f;
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);
    pthread_create(&f, NULL, forker, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_join(f, NULL);
    for (int i = 0; i < THREADS; i++)
        drain_mailbox(i);

    CHECK_EQ_SIZE(atomic_load(&bad_content), 0);
    CHECK_EQ_SIZE(zmalloc_verify(), 0);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);

    /* zstrdup and zcalloc_num keep the exact sizes too. */
    char *s = zstrdup("hello");
    CHECK_EQ_SIZE(zmalloc_usable_size(s), 6);
    int *v = zcalloc_num(10, sizeof(int));
    CHECK_EQ_SIZE(zmalloc_usable_size(v), 10 * sizeof(int));
    CHECK_EQ_SIZE(zmalloc_used_memory(), base + 6 + 10 * sizeof(int));
    zfree(s);
    zfree(v);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    CHECK_EQ_SIZE(zmalloc_verify(), 0);
    return test_summary("test_debug_heavy");
}
