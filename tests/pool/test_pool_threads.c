/* test_pool_threads.c: 8 threads x 1M random operations over one shared
 * table of blocks, so most frees are remote (a block is freed by whichever
 * thread swaps it out). Every block carries its size and a token and is
 * filled with the token; each is checked in full before it is freed.
 * Sizes mix small classes, medium, large and a few huge blocks; a share of
 * the allocations are aligned or reallocated. Ends with every block freed:
 * the accounting and the backend's allocated bytes return to the baseline. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "backend.h"
#include "test.h"
#include "zmalloc.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define DEFAULT_OPS 100000
#else
#define DEFAULT_OPS 1000000
#endif
#define THREADS 8
#define SLOTS 8192

static _Atomic(uintptr_t) slots[SLOTS];
static _Atomic long corrupt;
static long ops_per_thread = DEFAULT_OPS;

typedef struct hdr {
    size_t size;
    uint64_t token;
} hdr;

static size_t pick_size(uint64_t r) {
    unsigned k = (unsigned)(r % 1000);
    if (k < 700) return 16 + (r >> 10) % 240;
    if (k < 950) return 256 + (r >> 10) % 4000;
    if (k < 995) return 4096 + (r >> 10) % 60000;
    if (k < 999) return 65536 + (r >> 10) % 200000;
    return 300000 + (r >> 10) % 700000;
}

static void stamp(unsigned char *p, size_t size, uint64_t token) {
    memset(p, (int)(token & 0xff), size);
    hdr h = {size, token};
    memcpy(p, &h, sizeof h);
}

static int verify(const unsigned char *p) {
    hdr h;
    memcpy(&h, p, sizeof h);
    if (h.size < sizeof h || h.size > ((size_t)1 << 21)) return 0;
    unsigned char c = (unsigned char)(h.token & 0xff);
    for (size_t i = sizeof h; i < h.size; i++)
        if (p[i] != c) return 0;
    return zmalloc_size((void *)p) >= h.size;
}

static uint64_t next_rand(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void *worker(void *arg) {
    uint64_t s = 0x9e3779b97f4a7c15ull * ((uintptr_t)arg + 1);
    for (long i = 0; i < ops_per_thread; i++) {
        uint64_t r = next_rand(&s);
        size_t slot = (size_t)(r % SLOTS);
        unsigned op = (unsigned)((r >> 40) % 16);
        unsigned char *nb = NULL;
        if (op < 10) {
            size_t n = pick_size(next_rand(&s));
            if (op == 0)
                nb = zmalloc_aligned((size_t)16 << ((r >> 50) % 8), n);
            else
                nb = zmalloc(n);
            stamp(nb, n, next_rand(&s));
        }
        uintptr_t old = atomic_exchange(&slots[slot], (uintptr_t)nb);
        if (!old) continue;
        unsigned char *ob = (unsigned char *)old;
        if (!verify(ob)) atomic_fetch_add(&corrupt, 1);
        if (op == 15 && !nb) {
            /* Reallocate then put back, content checked again. */
            hdr h;
            memcpy(&h, ob, sizeof h);
            size_t n = pick_size(next_rand(&s));
            ob = zrealloc(ob, n);
            hdr h2;
            memcpy(&h2, ob, sizeof h2);
            if (h2.size != h.size || h2.token != h.token) atomic_fetch_add(&corrupt, 1);
            stamp(ob, n, h.token);
            old = atomic_exchange(&slots[slot], (uintptr_t)ob);
            if (!old) continue;
            ob = (unsigned char *)old;
            if (!verify(ob)) atomic_fetch_add(&corrupt, 1);
        }
        zfree(ob);
    }
    return NULL;
}

int main(void) {
    const char *env = getenv("POOL_TEST_OPS");
    if (env) ops_per_thread = atol(env);
    size_t base = zmalloc_used_memory();
    zm_be_stats st0;
    zm_be_get_stats(1, &st0);
    pthread_t t[THREADS];
    for (long i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)i);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    CHECK(atomic_load(&corrupt) == 0);
    long left = 0;
    for (int i = 0; i < SLOTS; i++) {
        unsigned char *p = (unsigned char *)atomic_load(&slots[i]);
        if (!p) continue;
        left++;
        CHECK(verify(p));
        zfree(p);
    }
    CHECK(left > 0);
    CHECK_EQ_SIZE(zmalloc_used_memory(), base);
    zm_be_stats st;
    zm_be_get_stats(1, &st);
    CHECK_EQ_SIZE(st.allocated, st0.allocated);
    CHECK(st.allocated <= st.active && st.active <= st.resident);
    zmalloc_purge();
    zm_be_get_stats(1, &st);
    CHECK(st.resident < ((size_t)64 << 20));
    /* Process RSS only without sanitizers: their shadow memory counts. */
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
    size_t rss = zmalloc_get_rss();
    CHECK(rss < ((size_t)64 << 20));
    if (rss >= ((size_t)64 << 20)) fprintf(stderr, "rss after purge %zu\n", rss);
#endif
    return test_summary("test_pool_threads");
}
