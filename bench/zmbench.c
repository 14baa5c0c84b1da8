/* zmbench.c: one benchmark workload per process.
 *
 * Built two ways, always the way a user gets zmalloc (no internal headers,
 * no link-time optimisation across the library boundary):
 *   API build     against an installed zmalloc, with
 *                 `cc zmbench.c $(pkg-config --cflags --libs zmalloc)`;
 *                 the workloads call zmalloc/zfree of libzmalloc.so.
 *   malloc build  -DZMB_MALLOC=1, no zmalloc at all: the workloads call
 *                 malloc/free, and bench/run.py runs the program under
 *                 LD_PRELOAD of each allocator (ours, jemalloc, tcmalloc,
 *                 mimalloc) or none (glibc).
 * bench/build.py does both builds; bench/run.py runs one process per
 * (workload, threads, variant, repetition), so peak RSS (VmHWM) belongs to
 * one workload. Each run prints one JSON line on stdout:
 * {"workload":..., "threads":..., "backend":..., "m":{metric: value}}.
 *
 * Workloads. The classic shapes (both builds; each reports "seconds", the
 * wall time of the workload, and "peak_rss"), written here from the
 * published descriptions of the benchmarks they are named after:
 *   larson         server threads replace random blocks of 8-1000 B, then
 *                  hand their blocks to a new thread and exit (Larson and
 *                  Krishnan)
 *   xmalloc        threads allocate batches, other threads free them
 *   mstress        mixed lifetimes, blocks passed between threads through a
 *                  shared array, threads exit and restart in generations
 *   cache-scratch  passive false sharing: each thread frees a block the
 *                  main thread allocated, then allocates and writes its own
 *   cache-thrash   active false sharing: threads allocate small blocks
 *                  side by side and write them
 *   malloc-large   5-25 MiB blocks, 4 live at a time, every page written
 *   bigheap        200k live blocks of 8-2048 B replaced at random
 *   bigheap-mt     the same per thread: 50k live blocks each
 *   thread-churn   threads created one after another, each allocating 2,000
 *                  blocks of 16-4096 B, freeing half and handing half to
 *                  the main thread
 * Older workloads, each answering a claim of the seed or an issue's target:
 *   churn     small-object churn, N threads, each on its own slots (both)
 *   prodcon   producer/consumer pairs, every free remote              (both)
 *   fastpath  single-thread alloc+free pairs of 16-256 B              (both)
 *   meta      10M live objects of 8-64 bytes: RSS / requested bytes   (API)
 *   large     4 KiB-4 MiB mixed alloc/free: RSS / live during, after  (API)
 *   redis     Redis-like dict of keys, values and entries: time, peak RSS,
 *             RSS / zmalloc_used_memory(), allocator figures          (API)
 *   realloc   sds-style appends (zrealloc_usable growth)              (API)
 *   account   zmalloc/zfree against plain malloc/free in the same process
 *   smaps     zmalloc_get_private_dirty; smaps_rollup against full smaps
 *
 * Memory the harness itself needs (pointer arrays, queues) comes from mmap,
 * never from the allocator under test, so the heap holds only the workload.
 * RSS figures of the memory workloads subtract the RSS measured just before
 * the workload starts allocating.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef ZMB_MALLOC
#define ZMB_MALLOC 0
#endif

#if ZMB_MALLOC
/* The malloc build: the few zmalloc calls the shared workloads make, as
 * plain malloc. Built with -fno-builtin-malloc so the compiler cannot drop
 * an allocation it can see freed. */
static void zmb_oom(size_t n) {
    fprintf(stderr, "zmbench: out of memory allocating %zu bytes\n", n);
    exit(2);
}
static inline void *zmalloc(size_t n) {
    void *p = malloc(n);
    if (__builtin_expect(p == NULL, 0)) zmb_oom(n);
    return p;
}
static inline void zfree(void *p) {
    free(p);
}
static const char *zmb_lib(void) {
    const char *pre = getenv("LD_PRELOAD");
    return pre && *pre ? pre : "glibc malloc";
}
#define ZMB_BACKEND "malloc"
#define ZMB_DEBUG 0
#else
#include <zmalloc.h>
static const char *zmb_lib(void) {
    return ZMALLOC_LIB;
}
#define ZMB_BACKEND zmalloc_backend()
#define ZMB_DEBUG ZMALLOC_DEBUG_BUILD
#endif

/* ---------------------------------------------------------------------
 * Helpers: time, memory figures, random numbers, output
 * --------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

/* A field of /proc/self/status in bytes ("VmHWM:", "VmRSS:"). */
static size_t status_bytes(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    size_t kb = 0, n = strlen(field);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, n) == 0) {
            kb = strtoull(line + n, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb * 1024;
}

static size_t peak_rss(void) {
    return status_bytes("VmHWM:");
}

/* Harness memory outside the allocator under test. */
static void *hmap(size_t size) {
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("zmbench: mmap");
    return p;
}

static void hunmap(void *p, size_t size) {
    munmap(p, size);
}

typedef struct rng {
    uint64_t s;
} rng;

static inline uint64_t rnd(rng *r) {
    /* xorshift64*: fast, good enough for picking sizes and slots. */
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 2685821657736338717ULL;
}

static inline size_t rnd_range(rng *r, size_t lo, size_t hi) { /* [lo, hi] */
    return lo + (size_t)(rnd(r) % (hi - lo + 1));
}

/* Small-object size mix shared by the churn-style workloads: mostly
 * 16-128 bytes, a quarter up to 1 KiB. */
static inline size_t small_size(rng *r) {
    uint64_t x = rnd(r);
    if ((x & 3) != 0) return 16 + (size_t)((x >> 8) % 113);
    return 128 + (size_t)((x >> 8) % 897);
}

/* A block with its first and last byte written, as a program would. */
static inline void *alloc_touched(size_t sz, uint64_t tag) {
    char *p = zmalloc(sz);
    p[0] = (char)tag;
    p[sz - 1] = (char)tag;
    return p;
}

static void touch_pages(char *p, size_t sz) {
    for (size_t o = 0; o < sz; o += 4096) p[o] = 1;
    p[sz - 1] = 1;
}

static long scaled(double base, double scale, long min) {
    long v = (long)(base * scale);
    return v < min ? min : v;
}

static struct {
    char buf[4096];
    size_t len;
} out;

static void metric(const char *name, double v) {
    out.len += (size_t)snprintf(out.buf + out.len, sizeof out.buf - out.len, "%s\"%s\":%.9g",
                                out.len ? "," : "", name, v);
}

static void emit(const char *workload, int threads, double scale) {
    printf("{\"workload\":\"%s\",\"threads\":%d,\"scale\":%g,\"backend\":\"%s\",\"lib\":\"%s\","
           "\"debug\":%d,\"m\":{%s}}\n",
           workload, threads, scale, ZMB_BACKEND, zmb_lib(), ZMB_DEBUG, out.buf);
    fflush(stdout);
}

/* Threads start together at a barrier. The wall time runs from the first
 * thread leaving the barrier to the last one finishing, as the threads see
 * it: on a loaded machine the main thread may wake long after the workers
 * have started, or even finished. */
typedef struct team {
    pthread_barrier_t start;
    _Atomic uint64_t first_ns, last_ns;
} team;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Called by each worker where its timed part begins. */
static void team_start(team *tm) {
    pthread_barrier_wait(&tm->start);
    uint64_t t = now_ns(), cur = atomic_load(&tm->first_ns);
    while (t < cur && !atomic_compare_exchange_weak(&tm->first_ns, &cur, t)) {
    }
}

static void team_done(team *tm) {
    uint64_t t = now_ns(), cur = atomic_load(&tm->last_ns);
    while (t > cur && !atomic_compare_exchange_weak(&tm->last_ns, &cur, t)) {
    }
}

static void start_thread(pthread_t *th, void *(*fn)(void *), void *arg) {
    if (pthread_create(th, NULL, fn, arg) != 0) {
        fprintf(stderr, "zmbench: pthread_create failed\n");
        exit(2);
    }
}

typedef struct team_call {
    void *(*fn)(void *);
    void *arg;
    team *tm;
} team_call;

static void *team_thread(void *v) {
    team_call *c = v;
    c->fn(c->arg);
    team_done(c->tm);
    return NULL;
}

/* Runs fn on n threads (args: n structs of arg_size bytes); each calls
 * team_start(tm) where its timed part begins. */
static void run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size, team *tm,
                        double *elapsed) {
    pthread_t *th = hmap(sizeof(pthread_t) * (size_t)n);
    team_call *calls = hmap(sizeof(team_call) * (size_t)n);
    pthread_barrier_init(&tm->start, NULL, (unsigned)n);
    atomic_store(&tm->first_ns, UINT64_MAX);
    atomic_store(&tm->last_ns, 0);
    for (int i = 0; i < n; i++) {
        calls[i] = (team_call){fn, (char *)args + arg_size * (size_t)i, tm};
        start_thread(&th[i], team_thread, &calls[i]);
    }
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    *elapsed = (double)(atomic_load(&tm->last_ns) - atomic_load(&tm->first_ns)) * 1e-9;
    pthread_barrier_destroy(&tm->start);
    hunmap(calls, sizeof(team_call) * (size_t)n);
    hunmap(th, sizeof(pthread_t) * (size_t)n);
}

/* The two figures every classic workload reports. */
static void time_and_peak(double seconds) {
    metric("seconds", seconds);
    metric("peak_rss", (double)peak_rss());
}

/* ---------------------------------------------------------------------
 * churn: each thread replaces random slots of its own array of 16384 small
 * blocks (allocation and free on the same thread). The total work is fixed
 * and split among the threads, so ops/s compares thread counts directly.
 * --------------------------------------------------------------------- */

#define CHURN_SLOTS 16384

typedef struct churn_arg {
    team *tm;
    long ops;
    int id;
} churn_arg;

static void *churn_thread(void *v) {
    churn_arg *a = v;
    rng r = {0x9E3779B97F4A7C15ULL * (uint64_t)(a->id + 1)};
    void **slot = hmap(sizeof(void *) * CHURN_SLOTS);
    team_start(a->tm);
    for (long i = 0; i < a->ops; i++) {
        uint64_t x = rnd(&r);
        size_t k = (size_t)(x % CHURN_SLOTS);
        if (slot[k]) zfree(slot[k]);
        size_t sz = small_size(&r);
        char *p = zmalloc(sz);
        p[0] = (char)i;
        p[sz - 1] = (char)i;
        slot[k] = p;
    }
    for (size_t k = 0; k < CHURN_SLOTS; k++) zfree(slot[k]);
    hunmap(slot, sizeof(void *) * CHURN_SLOTS);
    return NULL;
}

static void wl_churn(int threads, double scale) {
    team tm;
    long ops = (long)(4000000 * scale) / threads; /* same total work at any thread count */
    churn_arg *args = hmap(sizeof(churn_arg) * (size_t)threads);
    for (int i = 0; i < threads; i++) args[i] = (churn_arg){&tm, ops, i};
    double el;
    run_threads(threads, churn_thread, args, sizeof(churn_arg), &tm, &el);
    metric("ops_per_s", (double)ops * threads / el);
    metric("seconds", el);
    metric("peak_rss", (double)peak_rss());
    hunmap(args, sizeof(churn_arg) * (size_t)threads);
}

/* ---------------------------------------------------------------------
 * prodcon: threads/2 producer-consumer pairs joined by a single-producer
 * single-consumer ring. The producer allocates and writes small blocks, the
 * consumer checks and frees them: every free is remote.
 * --------------------------------------------------------------------- */

#define RING 1024

typedef struct ring_q {
    _Alignas(64) _Atomic size_t head; /* written by the producer */
    _Alignas(64) _Atomic size_t tail; /* written by the consumer */
    _Alignas(64) void *slot[RING];
} ring_q;

typedef struct pc_arg {
    team *tm;
    ring_q *q;
    long ops;
    int producer;
    int id;
} pc_arg;

static void *pc_thread(void *v) {
    pc_arg *a = v;
    ring_q *q = a->q;
    rng r = {0xABCDEF12345ULL * (uint64_t)(a->id + 1)};
    team_start(a->tm);
    if (a->producer) {
        size_t head = 0, tail_seen = 0;
        for (long i = 0; i < a->ops; i++) {
            size_t sz = small_size(&r);
            char *p = zmalloc(sz);
            p[0] = (char)(sz | 1);
            while (head - tail_seen == RING) {
                tail_seen = atomic_load_explicit(&q->tail, memory_order_acquire);
                if (head - tail_seen == RING) sched_yield();
            }
            q->slot[head % RING] = p;
            head++;
            if ((head & 15) == 0 || i == a->ops - 1)
                atomic_store_explicit(&q->head, head, memory_order_release);
        }
    } else {
        size_t tail = 0, head_seen = 0;
        for (long i = 0; i < a->ops; i++) {
            while (tail == head_seen) {
                head_seen = atomic_load_explicit(&q->head, memory_order_acquire);
                if (tail == head_seen) sched_yield();
            }
            char *p = q->slot[tail % RING];
            if (p[0] == 0) abort(); /* every size is >= 16: the byte is never 0 */
            zfree(p);
            tail++;
            if ((tail & 15) == 0) atomic_store_explicit(&q->tail, tail, memory_order_release);
        }
    }
    return NULL;
}

static void wl_prodcon(int threads, double scale) {
    int pairs = threads / 2 > 0 ? threads / 2 : 1;
    long total = (long)(4000000 * scale);
    long per_pair = total / pairs;
    team tm;
    ring_q *qs = hmap(sizeof(ring_q) * (size_t)pairs);
    pc_arg *args = hmap(sizeof(pc_arg) * (size_t)pairs * 2);
    for (int i = 0; i < pairs; i++) {
        args[2 * i] = (pc_arg){&tm, &qs[i], per_pair, 1, 2 * i};
        args[2 * i + 1] = (pc_arg){&tm, &qs[i], per_pair, 0, 2 * i + 1};
    }
    double el;
    run_threads(pairs * 2, pc_thread, args, sizeof(pc_arg), &tm, &el);
    metric("ops_per_s", (double)per_pair * pairs / el);
    metric("seconds", el);
    metric("peak_rss", (double)peak_rss());
    hunmap(args, sizeof(pc_arg) * (size_t)pairs * 2);
    hunmap(qs, sizeof(ring_q) * (size_t)pairs);
}

/* =====================================================================
 * Workloads of the zmalloc API only (used memory, purge, allocator
 * figures, usable sizes): not in the malloc build.
 * ===================================================================== */
#if !ZMB_MALLOC

/* Log-uniform in [lo, hi]: as many 4-8 KiB blocks as 2-4 MiB ones. */
static size_t rnd_log(rng *r, size_t lo, size_t hi) {
    double u = (double)(rnd(r) >> 11) * (1.0 / 9007199254740992.0);
    return (size_t)((double)lo * exp(u * log((double)hi / (double)lo)));
}

/* Allocator figures, as Redis's INFO memory shows them. */
static void allocator_metrics(void) {
    size_t allocated = 0, active = 0, resident = 0, retained = 0, muzzy = 0, frag = 0;
    zmalloc_get_allocator_info_full(1, &allocated, &active, &resident, &retained, &muzzy, &frag);
    metric("alloc_allocated", (double)allocated);
    metric("alloc_active", (double)active);
    metric("alloc_resident", (double)resident);
    metric("alloc_retained", (double)retained);
    metric("alloc_muzzy", (double)muzzy);
    metric("alloc_frag_smallbins", (double)frag);
    if (allocated) metric("allocator_frag_ratio", (double)active / (double)allocated);
    if (active) metric("allocator_rss_ratio", (double)resident / (double)active);
}

/* ---------------------------------------------------------------------
 * meta: 10 million live objects of 8-64 bytes, every byte written.
 * RSS growth over requested bytes shows per-object metadata and size-class
 * rounding (the prefix path's 16 bytes per block included).
 * --------------------------------------------------------------------- */

static void wl_meta(int threads, double scale) {
    (void)threads;
    size_t n = (size_t)(10000000 * scale);
    void **ptrs = hmap(sizeof(void *) * n);
    memset(ptrs, 0, sizeof(void *) * n); /* resident before the baseline */
    rng r = {12345};
    size_t used0 = zmalloc_used_memory();
    size_t rss0 = zmalloc_get_rss();
    size_t requested = 0;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        size_t sz = rnd_range(&r, 8, 64);
        ptrs[i] = zmalloc(sz);
        memset(ptrs[i], (int)i, sz);
        requested += sz;
    }
    double el = now_s() - t0;
    size_t rss1 = zmalloc_get_rss();
    size_t used1 = zmalloc_used_memory();
    double grown = (double)rss1 - (double)rss0;
    metric("objects", (double)n);
    metric("requested", (double)requested);
    metric("rss_growth", grown);
    metric("rss_per_requested", grown / (double)requested);
    metric("overhead_bytes_per_object", (grown - (double)requested) / (double)n);
    metric("used_per_requested", (double)(used1 - used0) / (double)requested);
    metric("ns_per_alloc", el * 1e9 / (double)n);
    metric("peak_rss", (double)peak_rss());
    allocator_metrics();
    /* The process exits without freeing: the kernel takes it all back. */
}

/* ---------------------------------------------------------------------
 * large: 4 KiB to 4 MiB blocks (log-uniform) in 128 slots, replaced at
 * random; every page written. RSS over live (requested) bytes is sampled
 * during the run, then after freeing three quarters of the blocks, then
 * after zmalloc_purge().
 * --------------------------------------------------------------------- */

#define LARGE_SLOTS 128

static void wl_large(int threads, double scale) {
    (void)threads;
    long ops = (long)(3000 * scale);
    char *slot[LARGE_SLOTS] = {0};
    size_t size[LARGE_SLOTS] = {0};
    rng r = {777};
    size_t rss0 = zmalloc_get_rss();
    size_t live = 0, peak_live = 0;
    double ratio_sum = 0, peak_growth = 0;
    int samples = 0;
    double t0 = now_s();
    for (long i = 0; i < ops; i++) {
        size_t k = (size_t)(rnd(&r) % LARGE_SLOTS);
        if (slot[k]) {
            zfree(slot[k]);
            live -= size[k];
        }
        size_t sz = rnd_log(&r, 4096, 4u << 20);
        slot[k] = zmalloc(sz);
        touch_pages(slot[k], sz);
        size[k] = sz;
        live += sz;
        if (live > peak_live) peak_live = live;
        if (i >= LARGE_SLOTS && i % 50 == 0) { /* after the slots first fill */
            double g = (double)zmalloc_get_rss() - (double)rss0;
            if (g > peak_growth) peak_growth = g;
            ratio_sum += g / (double)live;
            samples++;
        }
    }
    double el = now_s() - t0;
    metric("seconds", el);
    metric("during_rss_per_live", samples ? ratio_sum / samples : 0);
    metric("peak_rss_per_peak_live", peak_growth / (double)peak_live);
    /* After: free three blocks in four. */
    for (size_t k = 0; k < LARGE_SLOTS; k++) {
        if (slot[k] && (rnd(&r) & 3) != 0) {
            zfree(slot[k]);
            live -= size[k];
            slot[k] = NULL;
        }
    }
    double after = (double)zmalloc_get_rss() - (double)rss0;
    metric("after_live", (double)live);
    metric("after_rss_per_live", after / (double)live);
    zmalloc_purge();
    double purged = (double)zmalloc_get_rss() - (double)rss0;
    metric("purged_rss_per_live", purged / (double)live);
    metric("peak_rss", (double)peak_rss());
    for (size_t k = 0; k < LARGE_SLOTS; k++) zfree(slot[k]);
}

/* ---------------------------------------------------------------------
 * redis: the shapes Redis allocates for string keys. A chained hash table
 * (bucket array from zcalloc, doubled at load factor 1 as dict.c does) of
 * 24-byte entries; keys are sds strings (3-byte sdshdr8 + bytes + NUL);
 * values are a 16-byte robj plus an sds, embedded in one block up to 44
 * bytes as Redis's embstr. Phases: insert N keys, overwrite half the values
 * with new sizes, delete half the keys at random, insert N/2 new keys.
 * Final RSS / zmalloc_used_memory() is INFO's mem_fragmentation_ratio.
 * --------------------------------------------------------------------- */

typedef struct dict_entry {
    char *key; /* sds: points past the header */
    void *val; /* robj */
    struct dict_entry *next;
} dict_entry;

typedef struct dict {
    dict_entry **table;
    size_t size, used;
} dict;

typedef struct robj {
    unsigned type : 4, encoding : 4, lru : 24;
    int refcount;
    void *ptr;
} robj;

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

static char *sds_new(const char *s, size_t len) {
    unsigned char *h = zmalloc(3 + len + 1); /* sdshdr8: len, alloc, flags */
    h[0] = (unsigned char)len;
    h[1] = (unsigned char)len;
    h[2] = 1;
    memcpy(h + 3, s, len);
    h[3 + len] = 0;
    return (char *)h + 3;
}

static size_t sds_len(const char *s) {
    return strlen(s);
}

static void sds_free(char *s) {
    zfree(s - 3);
}

/* Value of len bytes: embstr (one block) up to 44 bytes, else robj + sds. */
static robj *value_new(rng *r, size_t len) {
    char buf[512];
    for (size_t i = 0; i < len; i++) buf[i] = (char)('a' + (rnd(r) & 15));
    if (len <= 44) {
        robj *o = zmalloc(sizeof(robj) + 3 + len + 1);
        o->type = 0;
        o->encoding = 8;
        o->refcount = 1;
        unsigned char *h = (unsigned char *)(o + 1);
        h[0] = h[1] = (unsigned char)len;
        h[2] = 1;
        memcpy(h + 3, buf, len);
        h[3 + len] = 0;
        o->ptr = h + 3;
        return o;
    }
    robj *o = zmalloc(sizeof(robj));
    o->type = 0;
    o->encoding = 0;
    o->refcount = 1;
    o->ptr = sds_new(buf, len);
    return o;
}

static void value_free(robj *o) {
    if (o->encoding == 0) sds_free(o->ptr);
    zfree(o);
}

/* Value sizes: many short (counters, flags), many medium, some long. */
static size_t value_size(rng *r) {
    uint64_t x = rnd(r) % 100;
    if (x < 40) return rnd_range(r, 16, 64);
    if (x < 80) return rnd_range(r, 65, 200);
    return rnd_range(r, 201, 400);
}

/* Key text for id: "user:<id>:" plus 0-24 padding bytes chosen by the id. */
static size_t key_text(uint64_t id, char *buf) {
    int n = sprintf(buf, "user:%llu:", (unsigned long long)id);
    size_t pad = (size_t)(hash_bytes((char *)&id, sizeof id) % 25);
    memset(buf + n, 'k', pad);
    return (size_t)n + pad;
}

static void dict_resize(dict *d, size_t size) {
    dict_entry **t = zcalloc(sizeof(dict_entry *) * size);
    for (size_t i = 0; i < d->size; i++) {
        dict_entry *e = d->table[i];
        while (e) {
            dict_entry *next = e->next;
            size_t b = hash_bytes(e->key, sds_len(e->key)) & (size - 1);
            e->next = t[b];
            t[b] = e;
            e = next;
        }
    }
    zfree(d->table);
    d->table = t;
    d->size = size;
}

static dict_entry **dict_find(dict *d, const char *k, size_t len) {
    dict_entry **pe = &d->table[hash_bytes(k, len) & (d->size - 1)];
    while (*pe && !(sds_len((*pe)->key) == len && memcmp((*pe)->key, k, len) == 0))
        pe = &(*pe)->next;
    return pe;
}

static void dict_add(dict *d, rng *r, uint64_t id) {
    char k[64];
    size_t len = key_text(id, k);
    if (d->used >= d->size) dict_resize(d, d->size * 2);
    dict_entry *e = zmalloc(sizeof *e);
    e->key = sds_new(k, len);
    e->val = value_new(r, value_size(r));
    size_t b = hash_bytes(k, len) & (d->size - 1);
    e->next = d->table[b];
    d->table[b] = e;
    d->used++;
}

static void wl_redis(int threads, double scale) {
    (void)threads;
    size_t n = (size_t)(1000000 * scale);
    rng r = {4242};
    dict d = {zcalloc(sizeof(dict_entry *) * 4), 4, 0};
    double t0 = now_s();
    for (uint64_t id = 0; id < n; id++) dict_add(&d, &r, id);
    double t_insert = now_s();
    /* Overwrite half the values (SET on an existing key). */
    for (size_t i = 0; i < n / 2; i++) {
        char k[64];
        uint64_t id = rnd(&r) % n;
        size_t len = key_text(id, k);
        dict_entry *e = *dict_find(&d, k, len);
        value_free(e->val);
        e->val = value_new(&r, value_size(&r));
    }
    double t_update = now_s();
    size_t used_full = zmalloc_used_memory();
    size_t rss_full = zmalloc_get_rss();
    /* Delete half the keys at random: a Fisher-Yates prefix of the ids. */
    uint32_t *perm = hmap(sizeof(uint32_t) * n);
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    for (size_t i = 0; i < n / 2; i++) {
        size_t j = i + (size_t)(rnd(&r) % (n - i));
        uint32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
        char k[64];
        size_t len = key_text(perm[i], k);
        dict_entry **pe = dict_find(&d, k, len);
        dict_entry *e = *pe;
        *pe = e->next;
        sds_free(e->key);
        value_free(e->val);
        zfree(e);
        d.used--;
    }
    hunmap(perm, sizeof(uint32_t) * n);
    double t_delete = now_s();
    size_t used_half = zmalloc_used_memory();
    size_t rss_half = zmalloc_get_rss();
    /* Refill with new keys. */
    for (uint64_t id = n; id < n + n / 2; id++) dict_add(&d, &r, id);
    double t_end = now_s();
    size_t used = zmalloc_used_memory();
    size_t rss = zmalloc_get_rss();
    metric("keys", (double)d.used);
    metric("seconds", t_end - t0);
    metric("insert_s", t_insert - t0);
    metric("update_s", t_update - t_insert);
    metric("delete_s", t_delete - t_update);
    metric("refill_s", t_end - t_delete);
    metric("peak_rss", (double)peak_rss());
    metric("full_frag_ratio", (double)rss_full / (double)used_full);
    metric("half_frag_ratio", (double)rss_half / (double)used_half);
    metric("used_memory", (double)used);
    metric("rss", (double)rss);
    metric("frag_ratio", (double)rss / (double)used);
    allocator_metrics();
    zmalloc_purge();
    metric("purged_frag_ratio", (double)zmalloc_get_rss() / (double)zmalloc_used_memory());
}

/* ---------------------------------------------------------------------
 * realloc: sds-style appends. Many strings grow in turn by small appends;
 * when one runs out of room it is reallocated to twice the needed length
 * (sdsMakeRoomFor below 1 MiB) and keeps whatever usable size it gets.
 * --------------------------------------------------------------------- */

typedef struct gstr {
    char *buf;
    size_t len, cap, target;
} gstr;

static void wl_realloc(int threads, double scale) {
    (void)threads;
    size_t n = 4000, rounds = (size_t)(4 * scale) ? (size_t)(4 * scale) : 1;
    gstr *s = hmap(sizeof(gstr) * n);
    rng r = {99};
    long appends = 0, reallocs = 0;
    size_t peak_used = 0;
    double t0 = now_s();
    for (size_t round = 0; round < rounds; round++) {
        for (size_t i = 0; i < n; i++) s[i] = (gstr){NULL, 0, 0, rnd_log(&r, 16, 64 << 10)};
        size_t active = n;
        while (active) {
            active = 0;
            for (size_t i = 0; i < n; i++) {
                gstr *g = &s[i];
                if (g->len >= g->target) continue;
                active++;
                size_t add = rnd_range(&r, 1, 32);
                if (g->len + add + 1 > g->cap) {
                    size_t want = (g->len + add) * 2 + 1;
                    if (want > (1u << 20)) want = g->len + add + (1u << 20);
                    size_t usable;
                    g->buf = zrealloc_usable(g->buf, want, &usable);
                    g->cap = usable;
                    reallocs++;
                }
                memset(g->buf + g->len, 'x', add);
                g->len += add;
                g->buf[g->len] = 0;
                appends++;
            }
        }
        size_t u = zmalloc_used_memory();
        if (u > peak_used) peak_used = u;
        for (size_t i = 0; i < n; i++) zfree(s[i].buf);
    }
    double el = now_s() - t0;
    metric("appends_per_s", (double)appends / el);
    metric("reallocs", (double)reallocs);
    metric("seconds", el);
    metric("peak_used", (double)peak_used);
    metric("peak_rss", (double)peak_rss());
    hunmap(s, sizeof(gstr) * n);
}

/* ---------------------------------------------------------------------
 * account: the zmalloc layer against plain malloc/free on the same loop (a
 * ring of 64 live blocks of mixed small sizes: free the oldest, allocate a
 * new one), and against Redis's own accounting scheme on plain malloc.
 * Plain malloc is the process's malloc: the backend's where the backend
 * library replaces malloc process-wide (libc, jemalloc, tcmalloc, mimalloc);
 * glibc's for pool, whose raw entry points the installed library does not
 * export (the malloc build under LD_PRELOAD of libzmalloc-preload.so times
 * the pool's own malloc). Rounds alternate the variants (order rotated each
 * round); each figure is the median of the rounds.
 * --------------------------------------------------------------------- */

#define ACC_RING 64
#define ACC_ROUNDS 7

typedef struct acc_arg {
    pthread_barrier_t *bar;
    long ops;
    int id;
    double *times; /* [round][variant], written by thread 0 */
} acc_arg;

static size_t acc_sizes[256];

static void acc_loop_z(long ops) {
    void *ring[ACC_RING] = {0};
    for (long i = 0; i < ops; i++) {
        size_t k = (size_t)i & (ACC_RING - 1);
        zfree(ring[k]);
        char *p = zmalloc(acc_sizes[i & 255]);
        p[0] = (char)i;
        ring[k] = p;
    }
    for (int k = 0; k < ACC_RING; k++) zfree(ring[k]);
}

static void acc_loop_raw(long ops) {
    void *ring[ACC_RING] = {0};
    for (long i = 0; i < ops; i++) {
        size_t k = (size_t)i & (ACC_RING - 1);
        free(ring[k]);
        char *p = malloc(acc_sizes[i & 255]);
        if (!p) abort();
        p[0] = (char)i;
        ring[k] = p;
    }
    for (int k = 0; k < ACC_RING; k++) free(ring[k]);
}

/* Redis's own scheme, for comparison: plain malloc plus a usable-size
 * query, then an atomic add on one of 16 padded slots picked by a
 * per-thread index (Redis 7.2's used_memory_thread[]). */
#define REDIS_SLOTS 16
static struct {
    _Alignas(64) _Atomic long long v;
} redis_used[REDIS_SLOTS];
static _Atomic int redis_next_index;
static __thread int redis_index = -1;

static inline _Atomic long long *redis_slot(void) {
    if (redis_index < 0) redis_index = atomic_fetch_add(&redis_next_index, 1) % REDIS_SLOTS;
    return &redis_used[redis_index].v;
}

static void acc_loop_redis(long ops) {
    void *ring[ACC_RING] = {0};
    _Atomic long long *slot = redis_slot();
    for (long i = 0; i < ops; i++) {
        size_t k = (size_t)i & (ACC_RING - 1);
        if (ring[k]) {
            atomic_fetch_sub_explicit(slot, (long long)malloc_usable_size(ring[k]),
                                      memory_order_relaxed);
            free(ring[k]);
        }
        char *p = malloc(acc_sizes[i & 255]);
        if (!p) abort();
        atomic_fetch_add_explicit(slot, (long long)malloc_usable_size(p), memory_order_relaxed);
        p[0] = (char)i;
        ring[k] = p;
    }
    for (int k = 0; k < ACC_RING; k++) {
        atomic_fetch_sub_explicit(slot, (long long)malloc_usable_size(ring[k]), memory_order_relaxed);
        free(ring[k]);
    }
}

enum { ACC_RAW, ACC_Z, ACC_REDIS, ACC_VARIANTS };

static void *acc_thread(void *v) {
    acc_arg *a = v;
    /* Warm every path (thread caches, accounting registration). */
    acc_loop_raw(a->ops / 10);
    acc_loop_z(a->ops / 10);
    acc_loop_redis(a->ops / 10);
    for (int round = 0; round < ACC_ROUNDS; round++) {
        for (int j = 0; j < ACC_VARIANTS; j++) {
            int variant = (round + j) % ACC_VARIANTS; /* rotate the order */
            pthread_barrier_wait(a->bar);
            double t0 = now_s();
            if (variant == ACC_Z) acc_loop_z(a->ops);
            else if (variant == ACC_REDIS) acc_loop_redis(a->ops);
            else acc_loop_raw(a->ops);
            pthread_barrier_wait(a->bar);
            if (a->id == 0) a->times[round * ACC_VARIANTS + variant] = now_s() - t0;
        }
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void wl_account(int threads, double scale) {
    rng r = {31337};
    for (int i = 0; i < 256; i++) acc_sizes[i] = rnd_range(&r, 8, 256);
    long ops = (long)(2000000 * scale);
    double times[ACC_ROUNDS * ACC_VARIANTS];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    acc_arg *args = hmap(sizeof(acc_arg) * (size_t)threads);
    pthread_t *th = hmap(sizeof(pthread_t) * (size_t)threads);
    for (int i = 0; i < threads; i++) {
        args[i] = (acc_arg){&bar, ops, i, times};
        start_thread(&th[i], acc_thread, &args[i]);
    }
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    double raw[ACC_ROUNDS], z[ACC_ROUNDS], red[ACC_ROUNDS], ratio[ACC_ROUNDS], vs_redis[ACC_ROUNDS];
    for (int i = 0; i < ACC_ROUNDS; i++) {
        raw[i] = times[i * ACC_VARIANTS + ACC_RAW];
        z[i] = times[i * ACC_VARIANTS + ACC_Z];
        red[i] = times[i * ACC_VARIANTS + ACC_REDIS];
        ratio[i] = z[i] / raw[i]; /* paired: same round, adjacent in time */
        vs_redis[i] = z[i] / red[i];
    }
    double total = (double)ops * threads;
    double mraw = median(raw, ACC_ROUNDS), mz = median(z, ACC_ROUNDS);
    metric("raw_ns_per_op", mraw * 1e9 / total);
    metric("z_ns_per_op", mz * 1e9 / total);
    metric("redis_ns_per_op", median(red, ACC_ROUNDS) * 1e9 / total);
    metric("overhead_pct", (median(ratio, ACC_ROUNDS) - 1) * 100);
    metric("vs_redis_pct", (median(vs_redis, ACC_ROUNDS) - 1) * 100);
    metric("ops_per_s", total / mz);
    pthread_barrier_destroy(&bar);
    hunmap(args, sizeof(acc_arg) * (size_t)threads);
    hunmap(th, sizeof(pthread_t) * (size_t)threads);
}

/* ---------------------------------------------------------------------
 * smaps: zmalloc_get_private_dirty on a large heap, and the two ways of
 * reading Private_Dirty it chooses between: /proc/self/smaps_rollup (one
 * record the kernel sums) and the full /proc/self/smaps scan Redis does.
 * The two readers here are the harness's own.
 * --------------------------------------------------------------------- */

#define SMAPS_EXTRA_MAPPINGS 1000

/* Sum of every "Private_Dirty:" line of a /proc file, in bytes. */
static size_t smaps_sum(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[512];
    size_t kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Private_Dirty:", 14) == 0) kb += strtoull(line + 14, NULL, 10);
    fclose(f);
    return kb * 1024;
}

/* Median times of the two readers, called alternately so that drift of a
 * shared machine falls on both alike. */
static void time_readers(size_t *rollup, size_t *full, int reps, double *t_rollup, double *t_full) {
    double a[31], b[31];
    if (reps > 31) reps = 31;
    for (int i = 0; i < reps; i++) {
        double t0 = now_s();
        *rollup = smaps_sum("/proc/self/smaps_rollup");
        double t_mid = now_s();
        *full = smaps_sum("/proc/self/smaps");
        a[i] = t_mid - t0;
        b[i] = now_s() - t_mid;
    }
    *t_rollup = median(a, reps);
    *t_full = median(b, reps);
}

static void wl_smaps(int threads, double scale) {
    (void)threads;
    /* Small objects (a Redis-like dataset) and large buffers. */
    size_t nsmall = (size_t)(1000000 * scale), nlarge = (size_t)(2000 * scale);
    void **ps = hmap(sizeof(void *) * (nsmall + nlarge));
    rng r = {5};
    for (size_t i = 0; i < nsmall; i++) {
        size_t sz = small_size(&r);
        ps[i] = zmalloc(sz);
        memset(ps[i], 1, sz);
    }
    for (size_t i = 0; i < nlarge; i++) {
        size_t sz = rnd_log(&r, 8192, 1u << 20);
        ps[nsmall + i] = zmalloc(sz);
        touch_pages(ps[nsmall + i], sz);
    }
    size_t vmas = 0;
    FILE *f = fopen("/proc/self/maps", "r");
    if (f) {
        int c;
        while ((c = fgetc(f)) != EOF) vmas += c == '\n';
        fclose(f);
    }
    size_t a = 0, b = 0;
    int reps = scale < 0.5 ? 5 : 15;
    double t_rollup, t_full;
    time_readers(&a, &b, reps, &t_rollup, &t_full);
    double t0 = now_s();
    size_t pd = zmalloc_get_private_dirty(-1);
    double t_api = now_s() - t0;
    metric("rss", (double)zmalloc_get_rss());
    metric("mappings", (double)vmas);
    metric("rollup_us", t_rollup * 1e6);
    metric("full_scan_us", t_full * 1e6);
    metric("api_us", t_api * 1e6);
    metric("speedup", t_full / t_rollup);
    metric("rollup_private_dirty", (double)a);
    metric("full_private_dirty", (double)b);
    metric("api_private_dirty", (double)pd);
    /* A process with many mappings (shared libraries, thread stacks with
     * guard pages, mapped files): smaps prints one record per mapping,
     * smaps_rollup still one. Alternate protections keep them apart. */
    size_t nmap = SMAPS_EXTRA_MAPPINGS, pg = (size_t)sysconf(_SC_PAGESIZE);
    char *extra = hmap(nmap * 2 * pg);
    for (size_t i = 0; i < nmap; i++) {
        mprotect(extra + 2 * i * pg, pg, PROT_READ);
        extra[(2 * i + 1) * pg] = 1;
    }
    time_readers(&a, &b, reps, &t_rollup, &t_full);
    t0 = now_s();
    zmalloc_get_private_dirty(-1);
    metric("many_api_us", (now_s() - t0) * 1e6);
    metric("many_mappings", (double)(vmas + 2 * nmap));
    metric("many_rollup_us", t_rollup * 1e6);
    metric("many_full_scan_us", t_full * 1e6);
    metric("many_speedup", t_full / t_rollup);
    hunmap(extra, nmap * 2 * pg);
}

#endif /* !ZMB_MALLOC */

/* ---------------------------------------------------------------------
 * fastpath: one thread, alloc then free at once, sizes 16-256 cycling.
 * The block is reused every time: this is the cost of the fast path alone
 * (bench/run.py also counts its instructions per pair with callgrind).
 * --------------------------------------------------------------------- */

__attribute__((noinline)) static void fastpath_pairs(long ops) {
    static const size_t sizes[16] = {16, 24, 32, 48, 64, 80, 96, 112,
                                     128, 160, 192, 224, 256, 40, 72, 200};
    for (long i = 0; i < ops; i++) {
        char *p = zmalloc(sizes[i & 15]);
        p[0] = (char)i;
        zfree(p);
    }
}

static void wl_fastpath(int threads, double scale) {
    (void)threads;
    long ops = scaled(20000000, scale, 1000);
    fastpath_pairs(100000); /* warm-up: thread heap, first pages */
    double t0 = now_s();
    fastpath_pairs(ops);
    double el = now_s() - t0;
    metric("ns_per_pair", el * 1e9 / (double)ops);
    metric("pairs_per_s", (double)ops / el);
}

/* =====================================================================
 * The classic shapes (issue 10). Written here from the published
 * descriptions of the benchmarks they are named after, not from their
 * code. The total work is fixed by the scale, not by a time limit, so a
 * run's "seconds" compares allocators directly.
 * ===================================================================== */

/* ---------------------------------------------------------------------
 * larson: Larson and Krishnan's server model. Each of T lineages owns 1000
 * slots of 8-1000 B blocks. A thread replaces random slots for its share of
 * the work, then starts a successor that inherits the slots (blocks another
 * thread allocated, freed by the new one) and exits: 30 generations per
 * lineage. Thread start and exit, and pages whose owner has exited, are in
 * the time.
 * --------------------------------------------------------------------- */

#define LARSON_SLOTS 1000
#define LARSON_GENERATIONS 30

typedef struct larson_lineage {
    void **slot; /* harness memory, handed from generation to generation */
    rng r;
    long rounds; /* replacements per generation */
    int gen;     /* generation now running */
    pthread_t tid[LARSON_GENERATIONS];
} larson_lineage;

static void *larson_thread(void *v) {
    larson_lineage *l = v;
    if (l->gen == 0)
        for (size_t k = 0; k < LARSON_SLOTS; k++)
            l->slot[k] = alloc_touched(rnd_range(&l->r, 8, 1000), k);
    for (long i = 0; i < l->rounds; i++) {
        size_t k = (size_t)(rnd(&l->r) % LARSON_SLOTS);
        zfree(l->slot[k]);
        l->slot[k] = alloc_touched(rnd_range(&l->r, 8, 1000), (uint64_t)i);
    }
    /* The successor owns *l from its creation on: write nothing after. */
    int next = ++l->gen;
    if (next < LARSON_GENERATIONS) start_thread(&l->tid[next], larson_thread, l);
    return NULL;
}

static void wl_larson(int threads, double scale) {
    long total = scaled(2400000, scale, LARSON_GENERATIONS * threads);
    larson_lineage *ls = hmap(sizeof(larson_lineage) * (size_t)threads);
    for (int i = 0; i < threads; i++) {
        ls[i].slot = hmap(sizeof(void *) * LARSON_SLOTS);
        ls[i].r = (rng){0x5DEECE66DULL * (uint64_t)(i + 1)};
        ls[i].rounds = total / threads / LARSON_GENERATIONS;
        ls[i].gen = 0;
    }
    double t0 = now_s();
    for (int i = 0; i < threads; i++) start_thread(&ls[i].tid[0], larson_thread, &ls[i]);
    /* Generation g wrote tid[g + 1] before it returned: the join orders it. */
    for (int g = 0; g < LARSON_GENERATIONS; g++)
        for (int i = 0; i < threads; i++) pthread_join(ls[i].tid[g], NULL);
    for (int i = 0; i < threads; i++) {
        for (size_t k = 0; k < LARSON_SLOTS; k++) zfree(ls[i].slot[k]);
        hunmap(ls[i].slot, sizeof(void *) * LARSON_SLOTS);
    }
    time_and_peak(now_s() - t0);
    metric("ops_per_s", (double)ls[0].rounds * LARSON_GENERATIONS * threads / (now_s() - t0));
    hunmap(ls, sizeof(larson_lineage) * (size_t)threads);
}

/* ---------------------------------------------------------------------
 * xmalloc: half the threads allocate batches of 64 small blocks and put
 * them on one shared queue (a mutex and two condition variables); the
 * other half take batches off it and free every block. Each block is
 * freed by a thread that did not allocate it, from any producer.
 * --------------------------------------------------------------------- */

#define XM_BATCH 64
#define XM_QUEUE 128

typedef struct xm_queue {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    size_t head, tail; /* batches put, batches taken */
    int producers_left;
    void *batch[XM_QUEUE][XM_BATCH];
} xm_queue;

typedef struct xm_arg {
    team *tm;
    xm_queue *q;
    long batches; /* producers: batches to make */
    int producer, id;
} xm_arg;

static void *xm_thread(void *v) {
    xm_arg *a = v;
    xm_queue *q = a->q;
    rng r = {0xC0FFEEULL * (uint64_t)(a->id + 1)};
    void *b[XM_BATCH];
    team_start(a->tm);
    if (a->producer) {
        for (long n = 0; n < a->batches; n++) {
            for (int i = 0; i < XM_BATCH; i++) b[i] = alloc_touched(small_size(&r), (uint64_t)i);
            pthread_mutex_lock(&q->mu);
            while (q->head - q->tail == XM_QUEUE) pthread_cond_wait(&q->not_full, &q->mu);
            memcpy(q->batch[q->head % XM_QUEUE], b, sizeof b);
            q->head++;
            pthread_cond_signal(&q->not_empty);
            pthread_mutex_unlock(&q->mu);
        }
        pthread_mutex_lock(&q->mu);
        q->producers_left--;
        pthread_cond_broadcast(&q->not_empty);
        pthread_mutex_unlock(&q->mu);
    } else {
        for (;;) {
            pthread_mutex_lock(&q->mu);
            while (q->head == q->tail && q->producers_left > 0) pthread_cond_wait(&q->not_empty, &q->mu);
            if (q->head == q->tail) {
                pthread_mutex_unlock(&q->mu);
                break;
            }
            memcpy(b, q->batch[q->tail % XM_QUEUE], sizeof b);
            q->tail++;
            pthread_cond_signal(&q->not_full);
            pthread_mutex_unlock(&q->mu);
            for (int i = 0; i < XM_BATCH; i++) zfree(b[i]);
        }
    }
    return NULL;
}

static void wl_xmalloc(int threads, double scale) {
    if (threads < 2) threads = 2;
    int producers = threads / 2;
    long blocks = scaled(2000000, scale, XM_BATCH * producers);
    team tm;
    xm_queue *q = hmap(sizeof(xm_queue));
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->not_empty, NULL);
    pthread_cond_init(&q->not_full, NULL);
    q->producers_left = producers;
    xm_arg *args = hmap(sizeof(xm_arg) * (size_t)threads);
    for (int i = 0; i < threads; i++)
        args[i] = (xm_arg){&tm, q, blocks / XM_BATCH / producers, i < producers, i};
    double el;
    run_threads(threads, xm_thread, args, sizeof(xm_arg), &tm, &el);
    time_and_peak(el);
    metric("ops_per_s", (double)args[0].batches * XM_BATCH * producers / el);
    hunmap(args, sizeof(xm_arg) * (size_t)threads);
    hunmap(q, sizeof(xm_queue));
}

/* ---------------------------------------------------------------------
 * mstress: mixed lifetimes across threads that come and go. Ten
 * generations of T threads run one after another; each thread:
 *  - keeps a ring of 64 short-lived blocks of its own (freed 64 steps on);
 *  - every 4th step swaps a new block into a random slot of a shared array
 *    of 8192 and frees the block it took out, which any thread, alive or
 *    exited, may have allocated (medium lifetimes);
 *  - now and then replaces one of 1024 long-lived shared blocks;
 *  - on exit, hands its ring's blocks to the shared array.
 * Sizes: 70% 8-64 B, 25% 64-512 B, 5% 512 B-8 KiB.
 * --------------------------------------------------------------------- */

#define MS_SHARED 8192
#define MS_LONG 1024
#define MS_RING 64
#define MS_GENERATIONS 10

static _Atomic(void *) ms_shared[MS_SHARED];
static _Atomic(void *) ms_long[MS_LONG];

typedef struct ms_arg {
    team *tm;
    long steps;
    uint64_t seed;
} ms_arg;

static inline size_t ms_size(rng *r) {
    uint64_t x = rnd(r) % 100;
    if (x < 70) return rnd_range(r, 8, 64);
    if (x < 95) return rnd_range(r, 65, 512);
    return rnd_range(r, 513, 8192);
}

static void ms_swap(_Atomic(void *) *slot, void *p) {
    void *old = atomic_exchange_explicit(slot, p, memory_order_acq_rel);
    zfree(old);
}

static void *ms_thread(void *v) {
    ms_arg *a = v;
    rng r = {a->seed};
    void *ring[MS_RING] = {0};
    team_start(a->tm);
    for (long i = 0; i < a->steps; i++) {
        size_t k = (size_t)i % MS_RING;
        zfree(ring[k]);
        ring[k] = alloc_touched(ms_size(&r), (uint64_t)i);
        uint64_t x = rnd(&r);
        if ((x & 3) == 0) ms_swap(&ms_shared[(x >> 8) % MS_SHARED], alloc_touched(ms_size(&r), x));
        if ((x & 255) == 1) ms_swap(&ms_long[(x >> 8) % MS_LONG], alloc_touched(ms_size(&r), x));
    }
    for (size_t k = 0; k < MS_RING; k++) ms_swap(&ms_shared[rnd(&r) % MS_SHARED], ring[k]);
    return NULL;
}

static void wl_mstress(int threads, double scale) {
    long total = scaled(1600000, scale, MS_GENERATIONS * threads);
    ms_arg *args = hmap(sizeof(ms_arg) * (size_t)threads);
    double el = 0;
    for (int g = 0; g < MS_GENERATIONS; g++) {
        team tm;
        double e;
        for (int i = 0; i < threads; i++)
            args[i] = (ms_arg){&tm, total / MS_GENERATIONS / threads,
                               0x9E3779B97F4A7C15ULL * (uint64_t)(g * threads + i + 1)};
        run_threads(threads, ms_thread, args, sizeof(ms_arg), &tm, &e);
        el += e;
    }
    double t0 = now_s();
    for (size_t k = 0; k < MS_SHARED; k++) zfree(atomic_exchange(&ms_shared[k], NULL));
    for (size_t k = 0; k < MS_LONG; k++) zfree(atomic_exchange(&ms_long[k], NULL));
    time_and_peak(el + (now_s() - t0));
    hunmap(args, sizeof(ms_arg) * (size_t)threads);
}

/* ---------------------------------------------------------------------
 * cache-scratch and cache-thrash: false sharing an allocator causes.
 * Each thread repeatedly allocates an 8-byte block, writes it 1000 times
 * and frees it. cache-thrash (active): the threads start together; an
 * allocator that serves them from one cache line makes them fight over it.
 * cache-scratch (passive): the main thread first allocates one 8-byte
 * block per thread, side by side, and each thread starts by freeing its
 * block; an allocator that hands that memory back to the freeing thread
 * puts the threads' blocks on one cache line.
 * --------------------------------------------------------------------- */

#define CACHE_WRITES 1000

typedef struct cache_arg {
    team *tm;
    void *inherited; /* cache-scratch: the main thread's block to free */
    long iterations;
} cache_arg;

static void *cache_thread(void *v) {
    cache_arg *a = v;
    team_start(a->tm);
    zfree(a->inherited);
    for (long i = 0; i < a->iterations; i++) {
        volatile char *p = zmalloc(8);
        for (int w = 0; w < CACHE_WRITES; w++) p[w & 7] = (char)(p[w & 7] + 1);
        zfree((void *)p);
    }
    return NULL;
}

static void cache_run(int threads, double scale, int passive) {
    team tm;
    long iterations = scaled(50000, scale, 10);
    cache_arg *args = hmap(sizeof(cache_arg) * (size_t)threads);
    for (int i = 0; i < threads; i++) args[i] = (cache_arg){&tm, passive ? zmalloc(8) : NULL, iterations};
    double el;
    run_threads(threads, cache_thread, args, sizeof(cache_arg), &tm, &el);
    time_and_peak(el);
    hunmap(args, sizeof(cache_arg) * (size_t)threads);
}

static void wl_cache_scratch(int threads, double scale) {
    cache_run(threads, scale, 1);
}

static void wl_cache_thrash(int threads, double scale) {
    cache_run(threads, scale, 0);
}

/* ---------------------------------------------------------------------
 * malloc-large: blocks of 5-25 MiB (uniform), 4 live at a time, a random
 * one replaced per step, every page of a new block written. An allocator
 * that keeps freed large blocks pays no page faults the second time.
 * --------------------------------------------------------------------- */

#define ML_SLOTS 4

static void wl_malloc_large(int threads, double scale) {
    (void)threads;
    long steps = scaled(40, scale, ML_SLOTS);
    char *slot[ML_SLOTS] = {0};
    rng r = {2024};
    double t0 = now_s();
    for (long i = 0; i < steps; i++) {
        size_t k = (size_t)(rnd(&r) % ML_SLOTS);
        zfree(slot[k]);
        size_t sz = rnd_range(&r, 5u << 20, 25u << 20);
        slot[k] = zmalloc(sz);
        touch_pages(slot[k], sz);
    }
    for (size_t k = 0; k < ML_SLOTS; k++) zfree(slot[k]);
    time_and_peak(now_s() - t0);
}

/* ---------------------------------------------------------------------
 * bigheap: a heap far larger than the caches: 200k live blocks of
 * 8-2048 B (uniform), filled and then replaced at random. bigheap-mt: each
 * of T threads does the same on 50k blocks of its own. The time includes
 * the fill and the final frees.
 * --------------------------------------------------------------------- */

typedef struct bigheap_arg {
    team *tm;
    size_t slots;
    long ops;
    uint64_t seed;
} bigheap_arg;

static void bigheap_loop(size_t slots, long ops, uint64_t seed) {
    void **slot = hmap(sizeof(void *) * slots);
    rng r = {seed};
    for (size_t k = 0; k < slots; k++) slot[k] = alloc_touched(rnd_range(&r, 8, 2048), k);
    for (long i = 0; i < ops; i++) {
        size_t k = (size_t)(rnd(&r) % slots);
        zfree(slot[k]);
        slot[k] = alloc_touched(rnd_range(&r, 8, 2048), (uint64_t)i);
    }
    for (size_t k = 0; k < slots; k++) zfree(slot[k]);
    hunmap(slot, sizeof(void *) * slots);
}

static void *bigheap_thread(void *v) {
    bigheap_arg *a = v;
    team_start(a->tm);
    bigheap_loop(a->slots, a->ops, a->seed);
    return NULL;
}

static void wl_bigheap(int threads, double scale) {
    (void)threads;
    double t0 = now_s();
    bigheap_loop(200000, scaled(600000, scale, 1000), 4711);
    time_and_peak(now_s() - t0);
}

static void wl_bigheap_mt(int threads, double scale) {
    team tm;
    bigheap_arg *args = hmap(sizeof(bigheap_arg) * (size_t)threads);
    for (int i = 0; i < threads; i++)
        args[i] = (bigheap_arg){&tm, 50000, scaled(600000, scale, 1000) / threads, 4711u + (uint64_t)i};
    double el;
    run_threads(threads, bigheap_thread, args, sizeof(bigheap_arg), &tm, &el);
    time_and_peak(el);
    hunmap(args, sizeof(bigheap_arg) * (size_t)threads);
}

/* ---------------------------------------------------------------------
 * thread-churn: threads created one after another (each joined before the
 * next starts); each allocates 2,000 blocks of 16-4096 B, frees every
 * other one and hands the rest to the main thread, which frees them after
 * the join. What a thread's start and exit cost the allocator.
 * --------------------------------------------------------------------- */

#define TC_BLOCKS 2000

typedef struct tc_arg {
    void **handed; /* TC_BLOCKS / 2 blocks for the main thread */
    uint64_t seed;
} tc_arg;

static void *tc_thread(void *v) {
    tc_arg *a = v;
    rng r = {a->seed};
    void *mine[TC_BLOCKS];
    for (int i = 0; i < TC_BLOCKS; i++) mine[i] = alloc_touched(rnd_range(&r, 16, 4096), (uint64_t)i);
    for (int i = 0; i < TC_BLOCKS; i += 2) zfree(mine[i]);
    for (int i = 1; i < TC_BLOCKS; i += 2) a->handed[i / 2] = mine[i];
    return NULL;
}

static void wl_thread_churn(int threads, double scale) {
    (void)threads;
    long n = scaled(200, scale, 10);
    void **handed = hmap(sizeof(void *) * TC_BLOCKS / 2);
    double t0 = now_s();
    for (long t = 0; t < n; t++) {
        pthread_t th;
        tc_arg a = {handed, 0x2545F4914F6CDD1DULL * (uint64_t)(t + 1)};
        start_thread(&th, tc_thread, &a);
        pthread_join(th, NULL);
        for (int i = 0; i < TC_BLOCKS / 2; i++) zfree(handed[i]);
    }
    time_and_peak(now_s() - t0);
    metric("threads_per_s", (double)n / (now_s() - t0));
    hunmap(handed, sizeof(void *) * TC_BLOCKS / 2);
}

/* --------------------------------------------------------------------- */

typedef struct workload {
    const char *name;
    void (*run)(int threads, double scale);
} workload;

static const workload workloads[] = {
    {"larson", wl_larson},
    {"xmalloc", wl_xmalloc},
    {"mstress", wl_mstress},
    {"cache-scratch", wl_cache_scratch},
    {"cache-thrash", wl_cache_thrash},
    {"malloc-large", wl_malloc_large},
    {"bigheap", wl_bigheap},
    {"bigheap-mt", wl_bigheap_mt},
    {"thread-churn", wl_thread_churn},
    {"churn", wl_churn},
    {"prodcon", wl_prodcon},
    {"fastpath", wl_fastpath},
#if !ZMB_MALLOC
    {"meta", wl_meta},
    {"large", wl_large},
    {"redis", wl_redis},
    {"realloc", wl_realloc},
    {"account", wl_account},
    {"smaps", wl_smaps},
#endif
};
#define N_WORKLOADS (sizeof workloads / sizeof workloads[0])

static void usage(void) {
    fprintf(stderr, "usage: zmbench -w WORKLOAD [-t THREADS] [-s SCALE] | -l | -i\n  workloads:");
    for (size_t i = 0; i < N_WORKLOADS; i++) fprintf(stderr, " %s", workloads[i].name);
    fprintf(stderr,
            "\n  -t  threads (where the workload has them)\n"
            "  -s  work scale (bench/workloads.json has the default run's)\n"
            "  -l  list the workloads of this build\n"
            "  -i  print the library and exit\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *w = NULL;
    int threads = 1;
    double scale = 1.0;
    int c;
    while ((c = getopt(argc, argv, "w:t:s:ilh")) != -1) {
        switch (c) {
        case 'w': w = optarg; break;
        case 't': threads = atoi(optarg); break;
        case 's': scale = atof(optarg); break;
        case 'i': printf("%s\n", zmb_lib()); return 0;
        case 'l':
            for (size_t i = 0; i < N_WORKLOADS; i++) printf("%s\n", workloads[i].name);
            return 0;
        default: usage();
        }
    }
    if (!w || threads < 1 || threads > 256 || !(scale > 0)) usage();
    for (size_t i = 0; i < N_WORKLOADS; i++) {
        if (strcmp(w, workloads[i].name) == 0) {
            workloads[i].run(threads, scale);
            emit(w, threads, scale);
            return 0;
        }
    }
    fprintf(stderr, "zmbench: no workload %s in this build\n", w);
    usage();
}
