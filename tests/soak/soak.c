/* soak.c: a long randomised run through the zmalloc API, on any backend.
 *
 *   soak [--short] [--threads T] [--ops N] [--slots S] [--short-lived K]
 *        [--forks F] [--seed X]
 *
 * Defaults (make soak): 8 threads x 50,000,000 operations, 32,768 shared
 * slots, 10,000 short-lived threads, 20 forks. --short (make test, also under
 * ASan and TSan): 4 threads x 100,000 operations, 4,096 slots, 200
 * short-lived threads, 2 forks.
 *
 * Workers share an array of slots holding blocks that describe themselves
 * (a header with size, seed and a check word; every byte after it follows
 * a pattern derived from the seed). Each operation picks a random slot and
 * one of: allocate (zmalloc, zcalloc, zmalloc_usable, ztrymalloc,
 * zmalloc_aligned) and swap the new block in, freeing the one that comes out
 * (often another thread's: cross-thread frees); take a block out and
 * zrealloc it (its prefix must survive); or just free what is there. Every
 * block leaving a slot is checked byte by byte before it is freed or grown.
 * Sizes: 70% 16-128 bytes, 25% to 4 KiB, 4.9% to 32 KiB, 0.1% to 1 MiB.
 *
 * Meanwhile the main thread creates the short-lived threads in waves (each
 * does a few hundred operations on the same slots and exits, so blocks
 * outlive the thread that made them), forks F times at even steps of the
 * workers' progress (the child checks and frees every block it inherited,
 * allocates and frees more, and exits with its count of bad blocks), and
 * samples RSS and zmalloc_used_memory().
 *
 * At the end every slot is checked and freed and:
 *  - no block was bad, in the parent or in any child;
 *  - zmalloc_used_memory() is back at its value before the run, exactly;
 *  - RSS is bounded: at most 2 x the largest live set seen + 64 MiB, and
 *    the second half of the run grew it by at most 25% + 16 MiB over the
 *    first half (growth without bound shows there); after zmalloc_purge()
 *    RSS is within 64 MiB of where it started (a verification build may
 *    hold 32 MiB more in its quarantine).
 * (The RSS checks are skipped under sanitizers, whose shadow memory counts.)
 * Under ASan alone the workers pause for each fork (fork_gate below): GCC
 * 12's ASan runtime does not hold its own allocator's locks across fork().
 * Prints the figures and "soak: N passed, M failed".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test.h"
#include "zmalloc.h"

/* ---- blocks that describe themselves ------------------------------------ */

typedef struct block_hdr {
    uint32_t size; /* bytes requested, >= sizeof(block_hdr) */
    uint32_t seed;
    uint32_t zeroed; /* 1: allocated by calloc, body must be zero until refilled */
    uint32_t check;  /* size ^ seed ^ zeroed ^ MAGIC */
} block_hdr;
#define MAGIC 0x5a6d5c31u
#define MIN_BLOCK ((uint32_t)sizeof(block_hdr))

/* The body is 8-byte words derived from the seed and the word's index (a
 * final partial word uses the low bytes of its word), so filling and
 * checking run at memory speed. */
static inline uint64_t pattern_word(uint32_t seed, size_t k) {
    return ((uint64_t)seed << 32 | seed) ^ ((k + 1) * 0x9e3779b97f4a7c15ull);
}

static void fill_body(unsigned char *p, size_t size, uint32_t seed) {
    size_t words = (size - sizeof(block_hdr)) / 8, k;
    unsigned char *body = p + sizeof(block_hdr);
    for (k = 0; k < words; k++) {
        uint64_t w = pattern_word(seed, k);
        memcpy(body + 8 * k, &w, 8);
    }
    uint64_t w = pattern_word(seed, k);
    memcpy(body + 8 * k, &w, (size - sizeof(block_hdr)) % 8);
}

/* Bytes [sizeof hdr, upto) of p hold the pattern (zeroed: are zero). */
static int body_ok(const unsigned char *p, size_t upto, uint32_t seed, int zeroed) {
    size_t n = upto - sizeof(block_hdr), words = n / 8, k;
    const unsigned char *body = p + sizeof(block_hdr);
    uint64_t acc = 0;
    for (k = 0; k < words; k++) {
        uint64_t w;
        memcpy(&w, body + 8 * k, 8);
        acc |= w ^ (zeroed ? 0 : pattern_word(seed, k));
    }
    uint64_t w = 0, want = zeroed ? 0 : pattern_word(seed, k);
    memcpy(&w, body + 8 * k, n % 8);
    uint64_t mask = n % 8 ? ~0ull >> (64 - 8 * (n % 8)) : 0;
    return acc == 0 && ((w ^ want) & mask) == 0;
}

static void fill(unsigned char *p, uint32_t size, uint32_t seed) {
    block_hdr h = {size, seed, 0, size ^ seed ^ 0u ^ MAGIC};
    memcpy(p, &h, sizeof h);
    fill_body(p, size, seed);
}

/* A calloc'd block: the header is written, the body must still be zero. */
static void mark_zeroed(unsigned char *p, uint32_t size, uint32_t seed) {
    block_hdr h = {size, seed, 1, size ^ seed ^ 1u ^ MAGIC};
    memcpy(p, &h, sizeof h);
}

/* 1 when p is intact; *size_out receives its recorded size. */
static int intact(const unsigned char *p, uint32_t *size_out) {
    block_hdr h;
    memcpy(&h, p, sizeof h);
    if ((h.size ^ h.seed ^ h.zeroed ^ MAGIC) != h.check || h.size < MIN_BLOCK) return 0;
    if (zmalloc_usable_size((void *)p) < h.size) return 0;
    if (!body_ok(p, h.size, h.seed, (int)h.zeroed)) return 0;
    if (size_out) *size_out = h.size;
    return 1;
}

/* ---- shared state ------------------------------------------------------- */

static struct {
    long threads, ops, slots, short_lived, forks;
    uint64_t seed;
} cfg = {8, 50000000, 32768, 10000, 20, 1};

static _Atomic(unsigned char *) *slots;
static atomic_long bad_blocks, ops_done;

static inline uint64_t next_random(uint64_t *s) {
    /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static uint32_t random_size(uint64_t *rng) {
    uint64_t r = next_random(rng);
    unsigned bucket = (unsigned)(r % 1000);
    uint64_t x = r >> 20;
    if (bucket < 700) return MIN_BLOCK + (uint32_t)(x % (128 - MIN_BLOCK + 1));
    if (bucket < 950) return 129 + (uint32_t)(x % (4096 - 128));
    if (bucket < 999) return 4097 + (uint32_t)(x % (32768 - 4096));
    return 32769 + (uint32_t)(x % ((1u << 20) - 32768));
}

static void drop(unsigned char *p) {
    if (!p) return;
    if (!intact(p, NULL)) atomic_fetch_add(&bad_blocks, 1);
    zfree(p);
}

static unsigned char *new_block(uint64_t *rng, uint32_t size, uint32_t seed) {
    unsigned char *p;
    size_t usable = 0;
    switch (next_random(rng) % 8) {
    case 0:
        p = zcalloc(size);
        if (p) {
            mark_zeroed(p, size, seed);
            return p;
        }
        break;
    case 1: p = zmalloc_usable(size, &usable); break;
    case 2: p = ztrymalloc(size); break;
    case 3: p = zmalloc_aligned((size_t)64 << (next_random(rng) % 6), size); break;
    default: p = zmalloc(size); break;
    }
    if (!p) return NULL;
    if (usable && usable < size) atomic_fetch_add(&bad_blocks, 1);
    fill(p, size, seed);
    return p;
}

/* One random operation on the shared slots. */
static void one_op(uint64_t *rng) {
    uint64_t r = next_random(rng);
    size_t slot = (size_t)(r % (uint64_t)cfg.slots);
    unsigned kind = (unsigned)((r >> 32) % 100);
    if (kind < 70) { /* allocate, swap in, free what comes out */
        unsigned char *p = new_block(rng, random_size(rng), (uint32_t)(r >> 16));
        drop(atomic_exchange(&slots[slot], p));
    } else if (kind < 90) { /* take out, grow or shrink, put back */
        unsigned char *p = atomic_exchange(&slots[slot], NULL);
        if (!p) return;
        uint32_t old;
        if (!intact(p, &old)) {
            atomic_fetch_add(&bad_blocks, 1);
            zfree(p);
            return;
        }
        uint32_t size = random_size(rng);
        block_hdr h;
        memcpy(&h, p, sizeof h);
        unsigned char *q = zrealloc(p, size);
        uint32_t keep = old < size ? old : size;
        if (!body_ok(q, keep, h.seed, (int)h.zeroed)) atomic_fetch_add(&bad_blocks, 1);
        fill(q, size, (uint32_t)(r >> 8));
        drop(atomic_exchange(&slots[slot], q));
    } else { /* free */
        drop(atomic_exchange(&slots[slot], NULL));
    }
}

/* The fork gate. ASan's allocator in GCC 12's libsanitizer is not locked
 * around fork(): a child forked while another thread is inside ASan's
 * malloc waits forever on that allocator's mutex (seen in make test, about
 * 1 run in 7: the child blocked in SizeClassAllocator64::GetFromAllocator
 * under zm_be_malloc). That is the sanitizer's runtime, not the library
 * under test, so under ASan the workers hold the gate shared around each
 * operation and the fork takes it exclusively: they stop at the fork
 * instead of running across it. Every other build (plain, TSan, whose
 * runtime does lock itself for fork, valgrind, verification) forks while
 * the workers allocate. */
#if defined(__SANITIZE_ADDRESS__)
#define SOAK_FORK_GATE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SOAK_FORK_GATE 1
#endif
#endif
/* A thread's exit frees the runtime's caches too: under the gate the
 * workers wait for the last fork before they return. */
static atomic_int forks_finished;
#if SOAK_FORK_GATE
/* Writer-preferring: four busy readers would otherwise starve the fork. */
static pthread_rwlock_t fork_gate = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
#define GATE_ENTER() pthread_rwlock_rdlock(&fork_gate)
#define GATE_LEAVE() pthread_rwlock_unlock(&fork_gate)
#else
#define SOAK_FORK_GATE 0
#define GATE_ENTER() ((void)0)
#define GATE_LEAVE() ((void)0)
#endif

static void *worker(void *arg) {
    uint64_t rng = cfg.seed * 0x9e3779b97f4a7c15ull + (uintptr_t)arg * 7919u + 1;
    for (long i = 0; i < cfg.ops; i++) {
        GATE_ENTER();
        one_op(&rng);
        GATE_LEAVE();
        if ((i & 1023) == 1023) atomic_fetch_add_explicit(&ops_done, 1024, memory_order_relaxed);
    }
    while (SOAK_FORK_GATE && !atomic_load(&forks_finished)) usleep(1000);
    return NULL;
}

static void *short_lived(void *arg) {
    uint64_t rng = cfg.seed * 0x2545f4914f6cdd1dull + (uintptr_t)arg + 1;
    for (int i = 0; i < 300; i++) one_op(&rng);
    return NULL;
}

/* ---- fork --------------------------------------------------------------- */

static void child_after_fork(void) {
    long bad = 0;
    /* Only this thread exists: every block in a slot is complete (workers
     * publish blocks after filling them), so all must check out. */
    for (long i = 0; i < cfg.slots; i++) {
        unsigned char *p = atomic_load(&slots[i]);
        if (!p) continue;
        if (!intact(p, NULL)) bad++;
        zfree(p);
        atomic_store(&slots[i], NULL);
    }
    uint64_t rng = 12345;
    for (int i = 0; i < 20000; i++) one_op(&rng);
    for (long i = 0; i < cfg.slots; i++) drop(atomic_exchange(&slots[i], NULL));
    bad += atomic_load(&bad_blocks);
    _exit(bad > 100 ? 100 : (int)bad);
}

/* Forks while the workers run; counts the fork, a clean child, or the
 * child's bad blocks. */
static void fork_and_check(long *forks, long *forks_ok, long *child_bad) {
    fflush(NULL);
#if SOAK_FORK_GATE
    pthread_rwlock_wrlock(&fork_gate);
#endif
    pid_t pid = fork();
#if SOAK_FORK_GATE
    pthread_rwlock_unlock(&fork_gate); /* in both: each holds its own copy */
#endif
    if (pid == 0) child_after_fork();
    ++*forks;
    int st = 0;
    if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st)) {
        if (WEXITSTATUS(st) == 0) ++*forks_ok;
        else *child_bad += WEXITSTATUS(st);
    }
}

/* ---- main --------------------------------------------------------------- */

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static long arg_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "soak: %s needs a value\n", argv[*i]);
        exit(2);
    }
    return atol(argv[++*i]);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--short")) {
            cfg.threads = 4, cfg.ops = 100000, cfg.slots = 4096, cfg.short_lived = 200, cfg.forks = 2;
        } else if (!strcmp(argv[i], "--threads")) cfg.threads = arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--ops")) cfg.ops = arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--slots")) cfg.slots = arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--short-lived")) cfg.short_lived = arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--forks")) cfg.forks = arg_value(argc, argv, &i);
        else if (!strcmp(argv[i], "--seed")) cfg.seed = (uint64_t)arg_value(argc, argv, &i);
        else {
            fprintf(stderr, "soak: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (cfg.threads < 1 || cfg.threads > 256 || cfg.slots < 1 || cfg.ops < 0) return 2;
    printf("soak: backend %s, %ld threads x %ld ops, %ld slots, %ld short-lived threads, %ld forks\n",
           zmalloc_backend(), cfg.threads, cfg.ops, cfg.slots, cfg.short_lived, cfg.forks);
    fflush(stdout);

    /* The harness's own memory is not the heap under test. */
    slots = calloc((size_t)cfg.slots, sizeof *slots);
    pthread_t *workers = calloc((size_t)cfg.threads, sizeof *workers);
    if (!slots || !workers) return 2;
    size_t used0 = zmalloc_used_memory();
    size_t rss0 = zmalloc_get_rss();
    double t0 = now_s();

    for (long i = 0; i < cfg.threads; i++)
        if (pthread_create(&workers[i], NULL, worker, (void *)(uintptr_t)i) != 0) {
            fprintf(stderr, "soak: pthread_create failed\n");
            return 2;
        }

    const long total_ops = cfg.threads * cfg.ops;
    long created = 0, forks = 0, forks_ok = 0, child_bad = 0;
    size_t peak_live = 0, peak_rss = 0, rss_first_half = 0, rss_second_half = 0;
    enum { WAVE = 16 };
    for (;;) {
        long done = atomic_load_explicit(&ops_done, memory_order_relaxed);
        double progress = total_ops ? (double)done / (double)total_ops : 1.0;
        /* Short-lived threads: spread over the run, all done by its end. */
        long want = (long)(progress * (double)cfg.short_lived) + WAVE;
        if (want > cfg.short_lived) want = cfg.short_lived;
        while (created < want) {
            pthread_t sh[WAVE];
            int n = 0;
            for (; n < WAVE && created < cfg.short_lived; n++, created++)
                if (pthread_create(&sh[n], NULL, short_lived, (void *)(uintptr_t)(created + 1000)) != 0) {
                    fprintf(stderr, "soak: pthread_create (short-lived) failed\n");
                    return 2;
                }
            for (int k = 0; k < n; k++) pthread_join(sh[k], NULL);
        }
        /* Forks at even steps of progress (fork i at i/(F+1)). */
        if (forks < cfg.forks && progress >= (double)(forks + 1) / (double)(cfg.forks + 1)) {
            fork_and_check(&forks, &forks_ok, &child_bad);
        }
        size_t live = zmalloc_used_memory() - used0, rss = zmalloc_get_rss();
        if (live > peak_live && live < ((size_t)1 << 62)) peak_live = live;
        if (rss > peak_rss) peak_rss = rss;
        if (progress < 0.5 && rss > rss_first_half) rss_first_half = rss;
        if (progress >= 0.5 && rss > rss_second_half) rss_second_half = rss;
        if (done >= total_ops - cfg.threads * 1024 && created == cfg.short_lived &&
            forks == cfg.forks)
            break;
        usleep(2000);
    }
    /* Forks not yet done (a run too short to reach their step) happen now,
     * so the count never depends on timing. */
    while (forks < cfg.forks) {
        fork_and_check(&forks, &forks_ok, &child_bad);
    }
    atomic_store(&forks_finished, 1);
    for (long i = 0; i < cfg.threads; i++) pthread_join(workers[i], NULL);
    double elapsed = now_s() - t0;
    size_t rss_end = zmalloc_get_rss();
    for (long i = 0; i < cfg.slots; i++) drop(atomic_exchange(&slots[i], NULL));
    size_t used_end = zmalloc_used_memory();
    zmalloc_purge();
    size_t rss_purged = zmalloc_get_rss();

    long bad = atomic_load(&bad_blocks);
    printf("soak: %ld ops in %.1f s (%.2f M ops/s), %ld short-lived threads, %ld/%ld forks ok\n",
           total_ops + cfg.short_lived * 300, elapsed,
           (double)(total_ops + cfg.short_lived * 300) / elapsed / 1e6, created, forks_ok, forks);
    printf("soak: bad blocks %ld (children: %ld); used memory %+lld bytes from start\n", bad,
           child_bad, (long long)used_end - (long long)used0);
    printf("soak: rss start %zu MiB, peak %zu MiB (first half %zu, second half %zu), end %zu MiB, "
           "after purge %zu MiB; peak live %zu MiB\n",
           rss0 >> 20, peak_rss >> 20, rss_first_half >> 20, rss_second_half >> 20, rss_end >> 20,
           rss_purged >> 20, peak_live >> 20);
    CHECK(bad == 0);
    CHECK(child_bad == 0 && forks_ok == cfg.forks);
    CHECK(created == cfg.short_lived);
    CHECK_EQ_SIZE(used_end, used0);
#ifndef UNDER_SANITIZER
    /* A verification build also holds up to 32 MiB of freed blocks in its
     * quarantine (README, verification mode). */
    size_t quarantine = ZMALLOC_DEBUG_BUILD ? (32u << 20) : 0;
    CHECK(peak_rss <= rss0 + 2 * peak_live + quarantine + (64u << 20));
    /* The quarantine may still be filling in the first half. */
    if (rss_first_half)
        CHECK(rss_second_half <= rss_first_half + rss_first_half / 4 + quarantine + (16u << 20));
    CHECK(rss_purged <= rss0 + quarantine + (64u << 20));
#endif
    free(workers);
    free(slots);
    return test_summary("soak");
}
