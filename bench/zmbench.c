/* zmbench.c: one benchmark workload per process, on whichever backend this
 * copy of libzmalloc was built with.
 *
 * bench/run.sh builds this program once per backend (build/bench-<backend>)
 * and bench/run.py runs it once per workload, thread count and repetition,
 * so peak RSS (VmHWM) belongs to one workload. Each run prints one JSON line
 * on stdout: {"workload":..., "threads":..., "backend":..., "m":{metric: value}}.
 *
 * Workloads (each answers a claim of the seed or a target of an issue; the
 * numbers in docs/benchmarks.md come from here):
 *   churn     small-object churn, N threads, each on its own slots   (ops/s)
 *   meta      10M live objects of 8-64 bytes: RSS / requested bytes
 *   large     4 KiB-4 MiB mixed alloc/free: RSS / live during and after
 *   prodcon   producer/consumer pairs, every free remote             (ops/s)
 *   redis     Redis-like dict of keys, values and entries: time, peak RSS,
 *             RSS / zmalloc_used_memory(), allocator figures
 *   realloc   sds-style appends (zrealloc_usable growth)
 *   account   zmalloc/zfree against the raw backend, interleaved rounds
 *   fastpath  single-thread zmalloc+zfree pairs of small sizes
 *   smaps     zmalloc_get_private_dirty: smaps_rollup against full smaps
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

#include "backend.h"
#include "platform.h"
#include "zmalloc.h"

/* ---------------------------------------------------------------------
 * Helpers: time, memory figures, random numbers, output
 * --------------------------------------------------------------------- */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
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
    if (p == MAP_FAILED) {
        perror("zmbench: mmap");
        exit(2);
    }
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

/* Log-uniform in [lo, hi]: as many 4-8 KiB blocks as 2-4 MiB ones. */
static size_t rnd_log(rng *r, size_t lo, size_t hi) {
    double u = (double)(rnd(r) >> 11) * (1.0 / 9007199254740992.0);
    return (size_t)((double)lo * exp(u * log((double)hi / (double)lo)));
}

/* Small-object size mix shared by the churn-style workloads: mostly
 * 16-128 bytes, a quarter up to 1 KiB. */
static inline size_t small_size(rng *r) {
    uint64_t x = rnd(r);
    if ((x & 3) != 0) return 16 + (size_t)((x >> 8) % 113);
    return 128 + (size_t)((x >> 8) % 897);
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
           workload, threads, scale, zmalloc_backend(), ZMALLOC_LIB, ZMALLOC_DEBUG_BUILD, out.buf);
    fflush(stdout);
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

/* Threads start together and the wall time runs from the release of the
 * barrier to the last join. */
typedef struct team {
    pthread_barrier_t start;
    double t0;
} team;

static void run_threads(int n, void *(*fn)(void *), void *args, size_t arg_size, team *tm,
                        double *elapsed) {
    pthread_t *th = hmap(sizeof(pthread_t) * (size_t)n);
    pthread_barrier_init(&tm->start, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        if (pthread_create(&th[i], NULL, fn, (char *)args + arg_size * (size_t)i) != 0) {
            fprintf(stderr, "zmbench: pthread_create failed\n");
            exit(2);
        }
    }
    pthread_barrier_wait(&tm->start);
    double t0 = now_s();
    for (int i = 0; i < n; i++) pthread_join(th[i], NULL);
    *elapsed = now_s() - t0;
    pthread_barrier_destroy(&tm->start);
    hunmap(th, sizeof(pthread_t) * (size_t)n);
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
    pthread_barrier_wait(&a->tm->start);
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
 * meta: 10 million live objects of 8-64 bytes, every byte written.
 * RSS growth over requested bytes shows per-object metadata and size-class
 * rounding (the prefix path's 16 bytes per block included).
 * --------------------------------------------------------------------- */

static void wl_meta(double scale) {
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

static void touch_pages(char *p, size_t sz) {
    for (size_t o = 0; o < sz; o += 4096) p[o] = 1;
    p[sz - 1] = 1;
}

static void wl_large(double scale) {
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
    pthread_barrier_wait(&a->tm->start);
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

static void wl_redis(double scale) {
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

static void wl_realloc(double scale) {
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
 * account: the zmalloc layer against the raw backend on the same loop (a
 * ring of 64 live blocks of mixed small sizes: free the oldest, allocate a
 * new one). Raw is malloc/free where the backend library replaces malloc
 * process-wide (libc, jemalloc, tcmalloc, mimalloc) and zm_be_malloc/
 * zm_be_free for pool. Rounds alternate raw and zmalloc (order swapped each
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
#if ZMALLOC_BACKEND_POOL
    size_t us[ACC_RING] = {0};
    for (long i = 0; i < ops; i++) {
        size_t k = (size_t)i & (ACC_RING - 1);
        if (ring[k]) zm_be_free(ring[k], us[k]);
        char *p = zm_be_malloc(acc_sizes[i & 255], &us[k]);
        p[0] = (char)i;
        ring[k] = p;
    }
    for (int k = 0; k < ACC_RING; k++) zm_be_free(ring[k], us[k]);
#else
    for (long i = 0; i < ops; i++) {
        size_t k = (size_t)i & (ACC_RING - 1);
        free(ring[k]);
        char *p = malloc(acc_sizes[i & 255]);
        if (!p) abort();
        p[0] = (char)i;
        ring[k] = p;
    }
    for (int k = 0; k < ACC_RING; k++) free(ring[k]);
#endif
}

/* Redis's own scheme, for comparison: the same backend call plus a
 * usable-size query, then an atomic add on one of 16 padded slots picked by
 * a per-thread index (Redis 7.2's used_memory_thread[]). */
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
#if ZMALLOC_BACKEND_POOL
            size_t u = zm_be_usable_size(ring[k]);
            atomic_fetch_sub_explicit(slot, (long long)u, memory_order_relaxed);
            zm_be_free(ring[k], u);
#else
            atomic_fetch_sub_explicit(slot, (long long)malloc_usable_size(ring[k]),
                                      memory_order_relaxed);
            free(ring[k]);
#endif
        }
#if ZMALLOC_BACKEND_POOL
        size_t u;
        char *p = zm_be_malloc(acc_sizes[i & 255], &u);
#else
        char *p = malloc(acc_sizes[i & 255]);
        if (!p) abort();
        size_t u = malloc_usable_size(p);
#endif
        atomic_fetch_add_explicit(slot, (long long)u, memory_order_relaxed);
        p[0] = (char)i;
        ring[k] = p;
    }
    for (int k = 0; k < ACC_RING; k++) {
#if ZMALLOC_BACKEND_POOL
        size_t u = zm_be_usable_size(ring[k]);
        zm_be_free(ring[k], u);
#else
        size_t u = malloc_usable_size(ring[k]);
        free(ring[k]);
#endif
        atomic_fetch_sub_explicit(slot, (long long)u, memory_order_relaxed);
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
        pthread_create(&th[i], NULL, acc_thread, &args[i]);
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
 * fastpath: one thread, zmalloc then zfree at once, sizes 16-256 cycling.
 * The block is reused every time: this is the cost of the fast path alone.
 * --------------------------------------------------------------------- */

static void wl_fastpath(double scale) {
    static const size_t sizes[16] = {16, 24, 32, 48, 64, 80, 96, 112,
                                     128, 160, 192, 224, 256, 40, 72, 200};
    long ops = (long)(20000000 * scale);
    for (long i = 0; i < 100000; i++) zfree(zmalloc(sizes[i & 15]));
    double t0 = now_s();
    for (long i = 0; i < ops; i++) {
        char *p = zmalloc(sizes[i & 15]);
        p[0] = (char)i;
        zfree(p);
    }
    double el = now_s() - t0;
    metric("ns_per_pair", el * 1e9 / (double)ops);
    metric("pairs_per_s", (double)ops / el);
}

/* ---------------------------------------------------------------------
 * smaps: time zmalloc_get_private_dirty's two ways of reading Private_Dirty
 * on a large heap: /proc/self/smaps_rollup (one record the kernel sums) and
 * the full /proc/self/smaps scan Redis does.
 * --------------------------------------------------------------------- */

#define SMAPS_EXTRA_MAPPINGS 1000

/* Median times of fn1 and fn2, called alternately so that drift of a
 * shared machine falls on both alike. */
static void time_pair(size_t (*fn1)(const char *, long), size_t (*fn2)(const char *, long),
                      size_t *r1, size_t *r2, int reps, double *t1, double *t2) {
    double a[31], b[31];
    if (reps > 31) reps = 31;
    for (int i = 0; i < reps; i++) {
        double t0 = now_s();
        *r1 = fn1("Private_Dirty:", -1);
        double t_mid = now_s();
        *r2 = fn2("Private_Dirty:", -1);
        a[i] = t_mid - t0;
        b[i] = now_s() - t_mid;
    }
    *t1 = median(a, reps);
    *t2 = median(b, reps);
}

static void wl_smaps(double scale) {
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
    time_pair(zm_os_smaps_field, zm_os_smaps_field_full_scan, &a, &b, reps, &t_rollup, &t_full);
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
    size_t nmap = SMAPS_EXTRA_MAPPINGS, pg = zm_os_page_size();
    char *extra = hmap(nmap * 2 * pg);
    for (size_t i = 0; i < nmap; i++) {
        mprotect(extra + 2 * i * pg, pg, PROT_READ);
        extra[(2 * i + 1) * pg] = 1;
    }
    time_pair(zm_os_smaps_field, zm_os_smaps_field_full_scan, &a, &b, reps, &t_rollup, &t_full);
    metric("many_mappings", (double)(vmas + 2 * nmap));
    metric("many_rollup_us", t_rollup * 1e6);
    metric("many_full_scan_us", t_full * 1e6);
    metric("many_speedup", t_full / t_rollup);
    hunmap(extra, nmap * 2 * pg);
}

/* --------------------------------------------------------------------- */

static void usage(void) {
    fprintf(stderr,
            "usage: zmbench -w WORKLOAD [-t THREADS] [-s SCALE]\n"
            "  workloads: churn meta large prodcon redis realloc account fastpath smaps\n"
            "  -t  threads (churn, prodcon: pairs = threads/2, account)\n"
            "  -s  work scale (1 = the default run's size)\n"
            "  -i  print the backend and exit\n");
    exit(2);
}

int main(int argc, char **argv) {
    const char *w = NULL;
    int threads = 1;
    double scale = 1.0;
    int c;
    while ((c = getopt(argc, argv, "w:t:s:ih")) != -1) {
        switch (c) {
        case 'w': w = optarg; break;
        case 't': threads = atoi(optarg); break;
        case 's': scale = atof(optarg); break;
        case 'i': printf("%s\n", ZMALLOC_LIB); return 0;
        default: usage();
        }
    }
    if (!w || threads < 1 || threads > 256 || !(scale > 0)) usage();
    if (!strcmp(w, "churn")) wl_churn(threads, scale);
    else if (!strcmp(w, "meta")) wl_meta(scale);
    else if (!strcmp(w, "large")) wl_large(scale);
    else if (!strcmp(w, "prodcon")) wl_prodcon(threads, scale);
    else if (!strcmp(w, "redis")) wl_redis(scale);
    else if (!strcmp(w, "realloc")) wl_realloc(scale);
    else if (!strcmp(w, "account")) wl_account(threads, scale);
    else if (!strcmp(w, "fastpath")) wl_fastpath(scale);
    else if (!strcmp(w, "smaps")) wl_smaps(scale);
    else usage();
    emit(w, threads, scale);
    return 0;
}
