/* stress.c: the preload library under load, run by tests/preload/run.sh as
 *   LD_PRELOAD=libzmalloc-preload.so stress [--expect-preload] [seconds-scale]
 *
 * Part 1, bad calls: each must get the C library's answer (NULL/ENOMEM,
 * EINVAL returned or set) and never crash.
 * Part 2, threads: T workers share an array of slots. Each step picks a
 * random slot and a random replaced function (malloc, calloc, realloc,
 * reallocarray, posix_memalign, aligned_alloc, memalign, valloc, pvalloc),
 * builds a block, fills it with a pattern derived from a seed stored in the
 * block itself, and swaps it into the slot; the block that comes out, often
 * made by another thread, is checked byte by byte and freed (or realloc'd),
 * so most frees are cross-thread. Short-lived threads come and go too, and
 * the main thread forks while the workers run: the child checks and frees
 * every block it inherited, allocates some more, and exits with the count
 * of bad blocks.
 * Prints "N passed, M failed"; exits non-zero on any failure.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;
#define CHECK(expr)                                                                 \
    do {                                                                            \
        if (expr) {                                                                 \
            passed++;                                                               \
        } else {                                                                    \
            failed++;                                                               \
            fprintf(stderr, "FAILED %s:%d: %s\n", __FILE__, __LINE__, #expr);       \
        }                                                                           \
    } while (0)

/* ---- blocks that describe themselves ------------------------------------ */

typedef struct hdr {
    uint64_t size;  /* bytes requested, >= sizeof(hdr) */
    uint64_t seed;
    uint64_t align; /* alignment asked for (0: none)   */
    uint64_t check; /* size ^ seed ^ align ^ magic     */
} hdr;
#define MAGIC 0x5a6d616c6c6f6321ull

static inline uint8_t pat(uint64_t seed, size_t i) {
    return (uint8_t)((seed >> ((i & 7) * 8)) + i * 131u);
}

static void fill(void *p, size_t size, uint64_t seed, size_t align) {
    hdr *h = p;
    h->size = size;
    h->seed = seed;
    h->align = align;
    h->check = size ^ seed ^ align ^ MAGIC;
    uint8_t *b = p;
    for (size_t i = sizeof(hdr); i < size; i++) b[i] = pat(seed, i);
}

static _Atomic long bad_blocks;

static int verify(void *p) {
    hdr *h = p;
    if ((h->size ^ h->seed ^ h->align ^ MAGIC) != h->check || h->size < sizeof(hdr)) {
        atomic_fetch_add(&bad_blocks, 1);
        return 0;
    }
    /* glibc's malloc alignment, 16 bytes for every size, when none was
     * asked for (the pool's 8-aligned classes never reach a program:
     * preload.c rounds small requests up to 16). */
    if ((uintptr_t)p & (h->align ? h->align - 1 : 15)) {
        atomic_fetch_add(&bad_blocks, 1);
        return 0;
    }
    if (malloc_usable_size(p) < h->size) {
        atomic_fetch_add(&bad_blocks, 1);
        return 0;
    }
    const uint8_t *b = p;
    for (size_t i = sizeof(hdr); i < h->size; i++)
        if (b[i] != pat(h->seed, i)) {
            atomic_fetch_add(&bad_blocks, 1);
            return 0;
        }
    return 1;
}

static inline uint64_t rnd(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* Mostly small, some medium, a few above the largest size class. */
static size_t pick_size(uint64_t *s) {
    uint64_t r = rnd(s) % 1000;
    if (r < 880) return sizeof(hdr) + rnd(s) % 512;
    if (r < 997) return sizeof(hdr) + rnd(s) % 65536;
    return sizeof(hdr) + rnd(s) % (3u << 20);
}

/* A new block from a randomly chosen function, filled. */
static void *make_block(uint64_t *s) {
    size_t size = pick_size(s), align = 0;
    uint64_t seed = rnd(s);
    void *p = NULL;
    switch (rnd(s) % 9) {
    case 0:
    case 1: p = malloc(size); break;
    case 2: {
        size_t n = 1 + rnd(s) % 8;
        size = (size + n - 1) / n * n;
        p = calloc(n, size / n);
        if (p) {
            const uint8_t *b = p;
            for (size_t i = 0; i < size; i++)
                if (b[i]) {
                    atomic_fetch_add(&bad_blocks, 1);
                    break;
                }
        }
        break;
    }
    case 3: {
        size_t k = 1 + rnd(s) % 4;
        size = (size + k - 1) / k * k;
        p = reallocarray(NULL, k, size / k);
        break;
    }
    case 4:
        align = (size_t)16 << (rnd(s) % 13); /* 16 .. 64 KiB */
        if (rnd(s) % 50 == 0) align = (size_t)1 << 20;
        if (posix_memalign(&p, align, size) != 0) p = NULL;
        break;
    case 5:
        align = (size_t)8 << (rnd(s) % 10);
        p = aligned_alloc(align, size);
        break;
    case 6:
        align = (size_t)32 << (rnd(s) % 8);
        p = memalign(align, size);
        break;
    case 7:
        align = 4096;
        p = rnd(s) & 1 ? valloc(size) : pvalloc(size);
        break;
    default: p = realloc(NULL, size); break;
    }
    if (!p) {
        atomic_fetch_add(&bad_blocks, 1);
        return NULL;
    }
    fill(p, size, seed, align);
    return p;
}

/* Check an old block and get rid of it: free, realloc(p, 0), or realloc
 * to a new size (content kept up to the smaller size) and then free. */
static void drop_block(void *p, uint64_t *s) {
    if (!p) return;
    if (!verify(p)) return; /* leak it: the report counts it */
    uint64_t r = rnd(s) % 10;
    if (r == 0) {
        void *q = realloc(p, 0);
        if (q) atomic_fetch_add(&bad_blocks, 1);
    } else if (r <= 2) {
        hdr h = *(hdr *)p;
        if (h.align) { /* realloc does not keep an over-alignment */
            free(p);
            return;
        }
        size_t nsize = pick_size(s);
        void *q = realloc(p, nsize);
        if (!q) {
            atomic_fetch_add(&bad_blocks, 1);
            free(p);
            return;
        }
        size_t keep = nsize < h.size ? nsize : h.size;
        const uint8_t *b = q;
        for (size_t i = sizeof(hdr); i < keep; i++)
            if (b[i] != pat(h.seed, i)) {
                atomic_fetch_add(&bad_blocks, 1);
                break;
            }
        free(q);
    } else {
        free(p);
    }
}

/* ---- shared slots and workers -------------------------------------------- */

#define NSLOTS 4096
static _Atomic(void *) slots[NSLOTS];
static _Atomic int stop;
static _Atomic long ops;

static void *worker(void *arg) {
    uint64_t s = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    long n = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        void *p = make_block(&s);
        void *old = atomic_exchange(&slots[rnd(&s) % NSLOTS], p);
        drop_block(old, &s);
        if (++n % 4096 == 0 && rnd(&s) % 8 == 0) {
            struct mallinfo2 mi = mallinfo2();
            (void)mi;
            malloc_trim(0);
        }
    }
    atomic_fetch_add(&ops, n);
    return NULL;
}

/* Short-lived threads: allocate, swap some blocks into slots (to be freed
 * by others after this thread is gone), free the rest, exit. */
static void *short_lived(void *arg) {
    uint64_t s = (uintptr_t)arg * 0x2545f4914f6cdd1dull + 7;
    void *mine[32];
    for (int i = 0; i < 32; i++) mine[i] = make_block(&s);
    for (int i = 0; i < 32; i += 4) drop_block(atomic_exchange(&slots[rnd(&s) % NSLOTS], mine[i]), &s);
    for (int i = 0; i < 32; i++)
        if (i % 4) drop_block(mine[i], &s);
    return NULL;
}

/* In a fork child: other threads are gone; check and free everything,
 * allocate more, exit with the number of bad blocks. */
static void child_after_fork(void) {
    uint64_t s = 12345;
    for (int i = 0; i < NSLOTS; i++) {
        void *p = atomic_exchange(&slots[i], NULL);
        drop_block(p, &s);
    }
    for (int i = 0; i < 5000; i++) {
        void *p = make_block(&s);
        void *old = atomic_exchange(&slots[rnd(&s) % NSLOTS], p);
        drop_block(old, &s);
    }
    for (int i = 0; i < NSLOTS; i++) drop_block(atomic_exchange(&slots[i], NULL), &s);
    long bad = atomic_load(&bad_blocks);
    _exit(bad > 255 ? 255 : (int)bad);
}

/* ---- bad calls ------------------------------------------------------------- */

static void bad_calls(void) {
    void *p;
    errno = 0;
    CHECK(malloc(SIZE_MAX) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(SIZE_MAX / 2) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(malloc(SIZE_MAX / 2 - 4096) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc(SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(calloc((size_t)1 << 40, (size_t)1 << 40) == NULL && errno == ENOMEM);
    errno = 0;
    CHECK(reallocarray(NULL, SIZE_MAX / 2, 3) == NULL && errno == ENOMEM);

    p = (void *)0x1;
    errno = 0;
    CHECK(posix_memalign(&p, 3, 16) == EINVAL && p == (void *)0x1);
    CHECK(posix_memalign(&p, 0, 16) == EINVAL && p == (void *)0x1);
    CHECK(posix_memalign(&p, 24, 16) == EINVAL && p == (void *)0x1);
    CHECK(posix_memalign(&p, 4, 16) == EINVAL && p == (void *)0x1);
    CHECK(posix_memalign(&p, 64, SIZE_MAX) == ENOMEM && p == (void *)0x1);
    /* aligned_alloc rejects what is not a power of two (C17 DR 460, glibc
     * 2.38; glibc 2.36 still rounds it up as memalign does). */
    errno = 0;
    CHECK(aligned_alloc(3, 16) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(aligned_alloc(0, 16) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(memalign(SIZE_MAX, 16) == NULL && errno == EINVAL);
    errno = 0;
    CHECK(pvalloc(SIZE_MAX - 100) == NULL && errno == ENOMEM);

    /* memalign rounds a non-power-of-two alignment up, as glibc does. */
    p = memalign(24, 100);
    CHECK(p && ((uintptr_t)p & 31) == 0);
    free(p);
    for (size_t a = 1; a <= ((size_t)4 << 20); a <<= 1) {
        p = NULL;
        int rc = posix_memalign(&p, a < sizeof(void *) ? sizeof(void *) : a, 100);
        CHECK(rc == 0 && p && ((uintptr_t)p & (a - 1)) == 0);
        if (p) memset(p, 0xab, 100);
        free(p);
        p = aligned_alloc(a, 3 * a);
        CHECK(p && ((uintptr_t)p & (a - 1)) == 0 && malloc_usable_size(p) >= 3 * a);
        free(p);
    }
    p = valloc(10);
    CHECK(p && ((uintptr_t)p & 4095) == 0);
    free(p);
    p = pvalloc(1);
    CHECK(p && ((uintptr_t)p & 4095) == 0 && malloc_usable_size(p) >= 4096);
    free(p);
    p = pvalloc(0);
    CHECK(p != NULL);
    free(p);

    /* malloc(0) and calloc(0, n): distinct, freeable blocks. */
    void *a = malloc(0), *b = malloc(0), *c = calloc(0, 10);
    CHECK(a && b && c && a != b && b != c);
    free(a);
    free(b);
    free(c);

    /* realloc as glibc: NULL allocates, size 0 frees and returns NULL, a
     * failed realloc keeps the block. */
    p = realloc(NULL, 100);
    CHECK(p != NULL);
    memset(p, 0x5c, 100);
    errno = 0;
    CHECK(realloc(p, SIZE_MAX) == NULL && errno == ENOMEM);
    CHECK(((unsigned char *)p)[99] == 0x5c);
    CHECK(realloc(p, 0) == NULL);
    free(NULL);
    CHECK(malloc_usable_size(NULL) == 0);

    /* calloc of a recycled block is zero. */
    int nonzero = 0;
    for (int i = 0; i < 100; i++) {
        size_t n = 16 + (size_t)i * 40;
        unsigned char *d = malloc(n);
        memset(d, 0xff, n);
        free(d);
        d = calloc(1, n);
        int zero = 1;
        for (size_t j = 0; j < n; j++) zero &= d[j] == 0;
        nonzero += !zero;
        free(d);
    }
    CHECK(nonzero == 0);

    /* Growing a block across every class keeps its content. */
    unsigned char *g = NULL;
    size_t have = 0;
    for (size_t n = 1; n <= ((size_t)4 << 20); n = n * 3 / 2 + 1) {
        g = realloc(g, n);
        if (!g) break;
        for (size_t i = have; i < n; i++) g[i] = (unsigned char)(i * 7);
        have = n;
    }
    int ok = g != NULL;
    for (size_t i = 0; ok && i < have; i++) ok = g[i] == (unsigned char)(i * 7);
    CHECK(ok);
    free(g);

    struct mallinfo2 mi = mallinfo2();
    CHECK(mi.uordblks <= mi.arena || mi.arena == 0);
    CHECK(malloc_trim(0) >= 0);
    /* Not replaced by the preload library: glibc's, which accepts it. */
    CHECK(mallopt(M_ARENA_MAX, 1) == 1);
}

int main(int argc, char **argv) {
    int expect_preload = 0;
    double scale = 1.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--expect-preload") == 0)
            expect_preload = 1;
        else
            scale = atof(argv[i]);
    }
    if (expect_preload) {
        Dl_info info;
        void *(*volatile m)(size_t) = malloc;
        CHECK(dladdr((void *)m, &info) && info.dli_fname && strstr(info.dli_fname, "zmalloc-preload"));
    }
    bad_calls();

    enum { T = 4, NFORKS = 4 };
    pthread_t th[T];
    for (uintptr_t i = 0; i < T; i++) pthread_create(&th[i], NULL, worker, (void *)(i + 1));
    int forks_ok = 0, forks = 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int round = 0;; round++) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        double el = (double)(now.tv_sec - start.tv_sec) + (double)(now.tv_nsec - start.tv_nsec) / 1e9;
        /* Run for the time asked, and at least until every fork is done
         * (a slow machine must not skip them). */
        if (el > 3.0 * scale && forks == NFORKS) break;
        if (getenv("STRESS_VERBOSE")) fprintf(stderr, "round %d at %.2fs\n", round, el);
        /* A burst of short-lived threads. */
        pthread_t sh[8];
        for (uintptr_t i = 0; i < 8; i++)
            pthread_create(&sh[i], NULL, short_lived, (void *)(round * 8 + i + 100));
        for (int i = 0; i < 8; i++) pthread_join(sh[i], NULL);
        if (round % 4 == 2 && forks < NFORKS) {
            forks++;
            pid_t pid = fork();
            if (pid == 0) child_after_fork();
            int st = 0;
            waitpid(pid, &st, 0);
            if (getenv("STRESS_VERBOSE")) fprintf(stderr, "fork child done\n");
            if (WIFEXITED(st) && WEXITSTATUS(st) == 0) forks_ok++;
            else
                fprintf(stderr, "fork child: %s %d\n", WIFEXITED(st) ? "exit" : "signal",
                        WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        }
        usleep(20000);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    uint64_t s = 99;
    for (int i = 0; i < NSLOTS; i++) drop_block(atomic_exchange(&slots[i], NULL), &s);
    CHECK(forks == NFORKS && forks_ok == forks);
    CHECK(atomic_load(&bad_blocks) == 0);
    CHECK(atomic_load(&ops) > 10000);
    fprintf(stderr, "stress: %ld operations in %d threads, %d forks, %ld bad blocks\n",
            atomic_load(&ops), T, forks, atomic_load(&bad_blocks));
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
