/* debug.c: verification mode (ZMALLOC_DEBUG=1), a layer between the front
 * end and any backend: the checks. debug_report.c formats what they find.
 *
 * Block layout. Each request of n bytes becomes one backend block:
 *
 *   raw                                          user                user+n
 *   | header (32 B)        | front guard (16 B) | n requested bytes  | tail guard (16 B) |
 *
 * The front region is 48 bytes (keeping the backend's 16-byte alignment)
 * or, for an alignment A > 16, 48 rounded up to A. Guard bytes hold
 * DBG_GUARD_BYTE, new blocks DBG_NEW_BYTE (zcalloc: zeros), freed blocks
 * DBG_FREED_BYTE.
 *
 * Records. Every live or quarantined block has a record (dbg_block: user
 * pointer, size, backend pointer and size, allocation and free sites,
 * state) kept outside the block, so stray writes cannot corrupt what the
 * checks rely on. The header holds the size, the record's address, its
 * home's address and a check word over pointer, size, record, home and
 * state (live or freed): that is how a pointer finds its record and the
 * lock that guards it without reading the record first, and a pointer
 * zmalloc never returned fails the check. The record, read under its home's
 * lock, is the authority: its user pointer, home and state must agree. A
 * header is read only when its memory is known to be mapped (same page as
 * the pointer, else zm_os_probe_mapped), so any pointer can be passed to
 * zfree.
 *
 * Homes. Each thread owns one home: a mutex, a free list of records, the
 * list of its record chunks (walked by zmalloc_verify, the leak report and
 * the invalid-free diagnosis) and its quarantine. A thread's own
 * allocations and frees lock only its own home, which no other thread
 * takes on the common path: the lock is uncontended and its line stays in
 * the owner's cache. Another thread takes it only to free one of the home's
 * blocks (that block then enters the owning home's quarantine) or to walk
 * the records. When a thread exits (lifecycle.c calls zm_dbg_thread_exit)
 * its home, with its records and quarantine, waits on an idle list for the
 * next new thread, so homes stay as many as threads alive at once. Record
 * chunks, homes and quarantine rings come from zm_os_map, never from malloc
 * (the backend may itself be malloc).
 *
 * Locks: at most one home lock is held at a time (except by the fork
 * handlers, which take the registry lock and then every home in order),
 * and no backend call is ever made while one is held: blocks leaving a
 * quarantine are checked under the lock (the check calls nothing; what it
 * finds is printed later) and, like blocks too large for it, given back to
 * the backend after the lock is released. So
 * fork() cannot deadlock against a thread that holds a home lock while it
 * waits for a lock of the backend (issue 12, item 2).
 *
 * Quarantine. A freed block keeps its record (marked freed; header
 * re-tagged freed), is filled with DBG_FREED_BYTE and queued FIFO in its
 * home's quarantine ring; when the ring holds more than quarantine_blocks
 * blocks or quarantine_bytes bytes (options.h) the oldest is checked (a
 * write after free is reported, without aborting) and given back to the
 * backend. The next block to leave is prefetched each time one leaves, so
 * its check does not wait for memory. A free whose header says freed is a
 * double free; a pointer whose header does not check out is an invalid free
 * (for an address inside a known block the report says which; a block
 * whose header alone was overwritten is reported as an underflow).
 *
 * Allocation sites: zm_dbg_note_caller() stores the public entry point's
 * return address in thread-local storage; zmalloc_debug_site() (called by
 * the ZMALLOC_DEBUG_SITES macros in zmalloc.h just before the entry point)
 * arms a file:line that the next allocation of this thread consumes.
 */
#define _GNU_SOURCE
#include "debug.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "debug_internal.h"
#include "lifecycle.h"
#include "options.h"
#include "platform.h"

/* Under ASan, LeakSanitizer must see the backend pointers our records hold
 * (records live in zm_os_map memory, which it does not scan). */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define REGISTER_ROOTS(p, n) __lsan_register_root_region((p), (n))
#else
#define REGISTER_ROOTS(p, n) ((void)0)
#endif
#include "zmalloc.h"

#define GUARD DBG_GUARD
#define FRONT DBG_FRONT
#define RECORD_CHUNK ((size_t)64 << 10)
#define EVICT_BATCH 16 /* blocks copied out of a quarantine per lock hold */
#define RING_MAX ((size_t)1 << 22)

#define dbg_likely(x) __builtin_expect(!!(x), 1)
#define dbg_unlikely(x) __builtin_expect(!!(x), 0)
#define DBG_COLD __attribute__((noinline, cold))

/* ---------------------------------------------------------------------
 * Data
 * --------------------------------------------------------------------- */

_Static_assert(sizeof(dbg_block) == 64, "a record is one cache line");

typedef struct chunk {
    struct chunk *next;
    size_t n;
    dbg_block rec[];
} chunk;

/* One quarantined block; the ring keeps user and size beside the record
 * pointer so the next block to leave can be prefetched without a miss. */
typedef struct q_entry {
    dbg_block *rec;
    unsigned char *user;
    size_t size;
} q_entry;

/* A home's lock. Its owner is nearly always the only taker, so it is one
 * atomic exchange to take and one store to drop, no system call; a thread
 * that finds it held (a walker, a cross-thread free, fork) yields until it
 * is free. */
typedef struct dbg_lock {
    _Atomic int held;
} dbg_lock;

DBG_COLD static void lock_wait(dbg_lock *l) {
    for (;;) {
        while (atomic_load_explicit(&l->held, memory_order_relaxed))
            sched_yield();
        if (!atomic_exchange_explicit(&l->held, 1, memory_order_acquire)) return;
    }
}

static inline void lock_take(dbg_lock *l) {
    if (dbg_unlikely(atomic_exchange_explicit(&l->held, 1, memory_order_acquire))) lock_wait(l);
}

static inline void lock_drop(dbg_lock *l) {
    atomic_store_explicit(&l->held, 0, memory_order_release);
}

typedef struct dbg_home {
    dbg_lock lock;
    struct dbg_home *next_all;  /* every home, newest first (registry)    */
    struct dbg_home *next_idle; /* homes no thread owns (registry lock)   */
    int owned;                  /* a thread has it as its home            */
    chunk *chunks;              /* every record of this home, for walks   */
    dbg_block *spare;           /* free records                           */
    q_entry *ring;              /* quarantine, FIFO: [head, head + count) */
    size_t ring_cap, q_head, q_count, q_bytes;
} __attribute__((aligned(64))) dbg_home;

/* The registry: every home ever made (never freed), and the idle ones. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static dbg_home *_Atomic all_homes;
static dbg_home *idle_homes;

/* Quarantine limits per home: options quarantine_blocks and
 * quarantine_bytes, read on first use. */
static struct {
    _Atomic int ready;
    size_t count, bytes;
} q_limit;

DBG_COLD static void q_limit_load(void) {
    long long count = zm_option(ZM_OPT_QUARANTINE_BLOCKS);
    long long bytes = zm_option(ZM_OPT_QUARANTINE_BYTES);
    q_limit.count = count > 0 ? (size_t)count : 0;
    if (q_limit.count > RING_MAX - 1) q_limit.count = RING_MAX - 1;
    q_limit.bytes = bytes > 0 ? (size_t)bytes : 0;
    atomic_store_explicit(&q_limit.ready, 1, memory_order_release);
}

static inline void q_limit_ensure(void) {
    if (dbg_unlikely(!atomic_load_explicit(&q_limit.ready, memory_order_acquire))) q_limit_load();
}

/* Patterns to compare whole blocks against with memcmp. */
static const unsigned char guard_pattern[GUARD] = {[0 ... GUARD - 1] = DBG_GUARD_BYTE};
static const unsigned char freed_pattern[4096] = {[0 ... 4095] = DBG_FREED_BYTE};

static __thread struct {
    void *ra;         /* return address of the current public entry point */
    const char *file; /* armed by zmalloc_debug_site()                     */
    int line;
    int armed; /* 1: set by the macro, 2: claimed by this entry point */
} site;

void zm_dbg_note_caller(void *return_address) {
    site.ra = return_address;
    site.armed = site.armed == 1 ? 2 : 0;
}

void zmalloc_debug_site(const char *file, int line) {
    site.file = file;
    site.line = line;
    site.armed = 1;
}

void *zm_dbg_current_caller(void) {
    return site.ra;
}

/* ---------------------------------------------------------------------
 * Homes
 * --------------------------------------------------------------------- */

/* This thread's home; NULL before its first allocation and after its exit
 * hook ran. */
static __thread dbg_home *my_home;

/* A home for threads past their exit hook (later destructors that still
 * allocate): shared, so its lock may be contended, which is rare. */
static dbg_home *orphan_home;
static __thread int my_thread_exited;

DBG_COLD static dbg_home *home_new(void) {
    q_limit_ensure();
    size_t size = (sizeof(dbg_home) + 4095) & ~(size_t)4095;
    dbg_home *h = zm_os_map(size);
    if (!h) return NULL;
    size_t cap = q_limit.count + 1;
    h->ring = zm_os_map(cap * sizeof(q_entry));
    if (!h->ring) {
        zm_os_unmap(h, size);
        return NULL;
    }
    REGISTER_ROOTS(h->ring, cap * sizeof(q_entry));
    h->ring_cap = cap;
    return h;
}

/* An idle home, or a new one; NULL when out of memory. */
DBG_COLD static dbg_home *home_adopt(void) {
    pthread_mutex_lock(&registry_lock);
    dbg_home *h = idle_homes;
    if (h) {
        idle_homes = h->next_idle;
        h->owned = 1;
    }
    pthread_mutex_unlock(&registry_lock);
    if (h) return h;
    h = home_new();
    if (!h) return NULL;
    h->owned = 1;
    pthread_mutex_lock(&registry_lock);
    h->next_all = atomic_load_explicit(&all_homes, memory_order_relaxed);
    atomic_store_explicit(&all_homes, h, memory_order_release);
    pthread_mutex_unlock(&registry_lock);
    return h;
}

DBG_COLD static dbg_home *home_slow(void) {
    if (my_thread_exited) {
        pthread_mutex_lock(&registry_lock);
        dbg_home *h = orphan_home;
        pthread_mutex_unlock(&registry_lock);
        if (h) return h;
        h = home_adopt();
        if (!h) return NULL;
        pthread_mutex_lock(&registry_lock);
        if (!orphan_home) {
            orphan_home = h;
        } else { /* another thread made one first: give ours back */
            h->owned = 0;
            h->next_idle = idle_homes;
            idle_homes = h;
            h = orphan_home;
        }
        pthread_mutex_unlock(&registry_lock);
        return h;
    }
    /* Ask lifecycle.c for the exit hook; without one (no key) the home
     * simply stays this thread's for good. */
    (void)zm_lifecycle_thread_attach();
    return my_home = home_adopt();
}

static inline dbg_home *home_mine(void) {
    dbg_home *h = my_home;
    return dbg_likely(h != NULL) ? h : home_slow();
}

void zm_dbg_thread_exit(void) {
    dbg_home *h = my_home;
    my_thread_exited = 1;
    my_home = NULL;
    if (!h) return;
    pthread_mutex_lock(&registry_lock);
    h->owned = 0;
    h->next_idle = idle_homes;
    idle_homes = h;
    pthread_mutex_unlock(&registry_lock);
}

void zm_dbg_for_each_block(int (*fn)(dbg_block *, void *), void *arg) {
    for (dbg_home *h = atomic_load_explicit(&all_homes, memory_order_acquire); h; h = h->next_all) {
        int stop = 0;
        lock_take(&h->lock);
        for (chunk *c = h->chunks; c && !stop; c = c->next)
            for (size_t j = 0; j < c->n && !stop; j++)
                if (c->rec[j].in_use) stop = fn(&c->rec[j], arg);
        lock_drop(&h->lock);
        if (stop) return;
    }
}

/* ---------------------------------------------------------------------
 * Headers
 * --------------------------------------------------------------------- */

/* The in-band header, just before the front guard: the size, the block's
 * record, its home and a check word binding them to the pointer and the
 * state (live or freed). */
enum { LIVE_TAG = 0x4c49, FREED_TAG = 0x4652 };

static inline uint64_t header_check(const unsigned char *user, size_t size, const dbg_block *rec,
                                    const dbg_home *home, uint64_t tag) {
    return ((uint64_t)size * 0x9E3779B97F4A7C15ull) ^ (uint64_t)(uintptr_t)user ^
           ((uint64_t)(uintptr_t)rec * 0xC2B2AE3D27D4EB4Full) ^
           ((uint64_t)(uintptr_t)home * 0x165667B19E3779F9ull) ^ (tag << 48) ^
           0x5a6d616c6c6f6321ull;
}

static inline void header_set(unsigned char *user, size_t size, dbg_block *rec, dbg_home *home,
                              uint64_t tag) {
    uint64_t h[4] = {size, (uint64_t)(uintptr_t)rec, (uint64_t)(uintptr_t)home,
                     header_check(user, size, rec, home, tag)};
    memcpy(user - FRONT, h, sizeof h);
}

/* Is the header in front of user readable? It is when it lies on user's
 * own page; otherwise ask the kernel whether its memory is mapped (a
 * pointer zmalloc never returned may sit at the start of a mapping). */
static inline int header_readable(const unsigned char *user) {
    size_t page = zm_os_page_size();
    uintptr_t u = (uintptr_t)user;
    if (u & 15) return 0; /* every block we return is 16-byte aligned */
    if (dbg_likely((u & (page - 1)) >= FRONT)) return 1;
    if (u < page + FRONT) return 0;
    return zm_os_probe_mapped((const void *)(u - FRONT), FRONT) == 0;
}

/* The record named by user's header if the header checks out with tag,
 * else NULL; *size and *home receive the size and the home. Safe for any
 * pointer (ASan would flag the read before a global or stack object that
 * an invalid free passes in, hence the attribute). */
__attribute__((no_sanitize_address)) static inline dbg_block *
header_probe(const unsigned char *user, uint64_t tag, size_t *size, dbg_home **home) {
    if (!header_readable(user)) return NULL;
    /* Plain loads, not memcpy, which ASan intercepts whatever the attribute. */
    const uint64_t *h = (const uint64_t *)((uintptr_t)user - FRONT);
    dbg_block *rec = (dbg_block *)(uintptr_t)h[1];
    dbg_home *hm = (dbg_home *)(uintptr_t)h[2];
    if (h[0] == 0 || h[0] >= SIZE_MAX / 2 || h[3] != header_check(user, h[0], rec, hm, tag))
        return NULL;
    *size = (size_t)h[0];
    *home = hm;
    return rec;
}

/* ---------------------------------------------------------------------
 * Checks: what is wrong with a block, collected into a sink
 * --------------------------------------------------------------------- */

/* Appends bytes of p[0..len) that differ from want (offsets relative to
 * the user pointer: base + i). Fast when nothing differs. */
static void scan(problem *pr, const unsigned char *p, size_t len, unsigned char want, long base) {
    const unsigned char *pat = want == DBG_FREED_BYTE ? freed_pattern : guard_pattern;
    size_t step = want == DBG_FREED_BYTE ? sizeof freed_pattern : sizeof guard_pattern;
    for (size_t i = 0; i < len; i += step) {
        size_t n = len - i < step ? len - i : step;
        if (dbg_likely(memcmp(p + i, pat, n) == 0)) continue;
        for (size_t j = i; j < i + n; j++) {
            if (p[j] == want) continue;
            if (pr->nwrong < DBG_MAX_WRONG) {
                pr->off[pr->nwrong] = base + (long)j;
                pr->val[pr->nwrong] = p[j];
            }
            pr->nwrong++;
        }
    }
}

#define GUARD_WORD 0xFDFDFDFDFDFDFDFDull

/* Both guard zones hold their pattern: four word compares, no call. */
static inline int guards_intact(const unsigned char *user, size_t size) {
    uint64_t f[2], t[2];
    memcpy(f, user - GUARD, sizeof f);
    memcpy(t, user + size, sizeof t);
    return ((f[0] ^ GUARD_WORD) | (f[1] ^ GUARD_WORD) | (t[0] ^ GUARD_WORD) |
            (t[1] ^ GUARD_WORD)) == 0;
}

/* p[0..n) all hold the freed fill (libc's memcmp is vectorised). */
static inline int fill_intact(const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; i += sizeof freed_pattern) {
        size_t len = n - i < sizeof freed_pattern ? n - i : sizeof freed_pattern;
        if (memcmp(p + i, freed_pattern, len) != 0) return 0;
    }
    return 1;
}

void zm_dbg_sink_init(sink *s, int growable) {
    s->items = s->local;
    s->n = s->lost = 0;
    s->cap = sizeof s->local / sizeof s->local[0];
    s->growable = growable;
}

static problem *sink_add(sink *s) {
    if (s->n == s->cap && s->growable) {
        size_t cap = s->cap * 4;
        problem *bigger = zm_os_map(cap * sizeof(problem));
        if (bigger) {
            memcpy(bigger, s->items, s->n * sizeof(problem));
            if (s->items != s->local) zm_os_unmap(s->items, s->cap * sizeof(problem));
            s->items = bigger;
            s->cap = cap;
        }
    }
    if (s->n == s->cap) {
        s->lost++;
        return NULL;
    }
    return &s->items[s->n++];
}

void zm_dbg_sink_free(sink *s) {
    if (s->items != s->local) zm_os_unmap(s->items, s->cap * sizeof(problem));
}

static void add_problem(sink *s, const problem *pr, int kind, const dbg_block *b) {
    problem *p = sink_add(s);
    if (p) *p = *pr, p->kind = kind, p->b = *b;
}

/* The full scan, once the quick checks found something wrong. */
DBG_COLD static int check_block_slow(const dbg_block *b, sink *s) {
    int found = 0;
    problem pr;
    pr.nwrong = 0;
    scan(&pr, b->user - GUARD, GUARD, DBG_GUARD_BYTE, -GUARD);
    if (pr.nwrong) add_problem(s, &pr, P_UNDERFLOW, b), found++;
    pr.nwrong = 0;
    scan(&pr, b->user + b->size, GUARD, DBG_GUARD_BYTE, (long)b->size);
    if (pr.nwrong) add_problem(s, &pr, P_OVERFLOW, b), found++;
    if (b->freed) {
        pr.nwrong = 0;
        scan(&pr, b->user, b->size, DBG_FREED_BYTE, 0);
        if (pr.nwrong) add_problem(s, &pr, P_USE_AFTER_FREE, b), found++;
    }
    return found;
}

int zm_dbg_check_block(const dbg_block *b, sink *s) {
    if (dbg_likely(guards_intact(b->user, b->size) && (!b->freed || fill_intact(b->user, b->size))))
        return 0;
    return check_block_slow(b, s);
}

/* ---------------------------------------------------------------------
 * Records (caller holds the home's lock)
 * --------------------------------------------------------------------- */

static dbg_block *record_new(dbg_home *h) {
    if (dbg_unlikely(!h->spare)) {
        chunk *c = zm_os_map(RECORD_CHUNK);
        if (!c) return NULL;
        REGISTER_ROOTS(c, RECORD_CHUNK);
        c->n = (RECORD_CHUNK - sizeof(chunk)) / sizeof(dbg_block);
        c->next = h->chunks;
        h->chunks = c;
        for (size_t i = c->n; i-- > 0;) {
            c->rec[i].home = h;
            c->rec[i].spare_next = h->spare;
            h->spare = &c->rec[i];
        }
    }
    dbg_block *b = h->spare;
    h->spare = b->spare_next;
    b->in_use = 1;
    return b;
}

static inline void record_free(dbg_home *h, dbg_block *b) {
    b->in_use = 0;
    b->spare_next = h->spare;
    h->spare = b;
}

/* ptr's record, found through its header (live or freed), with its home
 * locked (*out); NULL, nothing locked, when ptr is not the start of a block
 * we know. */
static dbg_block *lookup_locked(const void *ptr, dbg_home **out) {
    size_t size;
    dbg_home *h;
    dbg_block *b = header_probe(ptr, LIVE_TAG, &size, &h);
    if (!b) b = header_probe(ptr, FREED_TAG, &size, &h);
    if (!b) return NULL;
    lock_take(&h->lock);
    if (!b->in_use || b->user != ptr || b->home != h) {
        lock_drop(&h->lock);
        return NULL;
    }
    *out = h;
    return b;
}

/* ---------------------------------------------------------------------
 * Quarantine
 * --------------------------------------------------------------------- */

/* Blocks taken out of a quarantine under a home's lock, already checked
 * there (what was wrong is in s), given back to the backend after the lock
 * is released (they are still ours until then). */
typedef struct evicted {
    size_t n;
    struct {
        unsigned char *raw;
        size_t raw_size;
    } b[EVICT_BATCH];
    sink s;
} evicted;

static inline void evicted_init(evicted *ev) {
    ev->n = 0;
    zm_dbg_sink_init(&ev->s, 0);
}

static inline void prefetch_block(const q_entry *e) {
    __builtin_prefetch(e->rec);
    __builtin_prefetch(e->user - GUARD);
    __builtin_prefetch(e->user + e->size);
}

/* Moves the oldest quarantined block of h (locked) into ev (not full). */
static void quarantine_take_oldest(dbg_home *h, evicted *ev) {
    q_entry *e = &h->ring[h->q_head];
    dbg_block *b = e->rec;
    if (++h->q_head == h->ring_cap) h->q_head = 0;
    h->q_count--;
    h->q_bytes -= b->size;
    if (h->q_count) prefetch_block(&h->ring[h->q_head]);
    /* Checked here, under the lock (a check calls nothing and allocates
     * nothing): no copy of the record is needed unless it is reported. */
    zm_dbg_check_block(b, &ev->s);
    ev->b[ev->n].raw = DBG_RAW(b);
    ev->b[ev->n].raw_size = b->raw_size;
    ev->n++;
    record_free(h, b);
}

static inline int quarantine_over(const dbg_home *h) {
    return h->q_count > q_limit.count || h->q_bytes > q_limit.bytes;
}

/* Releases what was taken out; prints what its checks found (a use after
 * free found here is reported, not fatal). No lock held. */
static void release_evicted(evicted *ev) {
    for (size_t i = 0; i < ev->n; i++)
        zm_be_free(ev->b[i].raw, ev->b[i].raw_size);
    ev->n = 0;
    if (dbg_unlikely(ev->s.n || ev->s.lost)) {
        zm_dbg_print_sink(&ev->s);
        zm_dbg_sink_init(&ev->s, 0);
    }
}

/* h is locked: takes blocks out of its quarantine while it is over its
 * limits, releasing them in batches with the lock dropped; returns with h
 * unlocked. */
static void quarantine_trim_and_unlock(dbg_home *h, evicted *ev) {
    for (;;) {
        while (ev->n < EVICT_BATCH && quarantine_over(h))
            quarantine_take_oldest(h, ev);
        int more = quarantine_over(h);
        lock_drop(&h->lock);
        release_evicted(ev);
        if (dbg_likely(!more)) return;
        lock_take(&h->lock);
    }
}

/* Empties every quarantine (before giving up on an allocation). */
DBG_COLD static void quarantine_drain(void) {
    evicted ev;
    evicted_init(&ev);
    for (dbg_home *h = atomic_load_explicit(&all_homes, memory_order_acquire); h; h = h->next_all) {
        lock_take(&h->lock);
        for (;;) {
            while (ev.n < EVICT_BATCH && h->q_count)
                quarantine_take_oldest(h, &ev);
            int more = h->q_count != 0;
            lock_drop(&h->lock);
            release_evicted(&ev);
            if (!more) break;
            lock_take(&h->lock);
        }
    }
}

/* ---------------------------------------------------------------------
 * Allocation
 * --------------------------------------------------------------------- */

static void *dbg_alloc(size_t size, size_t align, int zero, size_t *usable) {
    /* FRONT, rounded up to the alignment (the backend aligns raw). */
    size_t front = align > 16 ? (FRONT + align - 1) & ~(align - 1) : FRONT;
    /* Rounded to 16 so that raw, and with it user (front is a multiple of
     * 16), is 16-aligned: the pool's 24-, 40- and 56-byte classes are only
     * 8-aligned, and the preload library hands this layer exact sizes so
     * the tail guard starts at the requested end. */
    size_t total = (front + size + GUARD + 15) & ~(size_t)15, raw_size = 0;
    if (dbg_unlikely(front >= ((size_t)1 << 30))) { /* dbg_block.front has 30 bits */
        errno = EINVAL;
        return NULL;
    }
    unsigned char *raw = NULL;
    for (int attempt = 0; attempt < 2 && !raw; attempt++) {
        if (attempt) quarantine_drain();
        if (align > 16)
            raw = zm_be_aligned_alloc(align, total, &raw_size);
        else if (zero)
            raw = zm_be_calloc(total, &raw_size);
        else
            raw = zm_be_malloc(total, &raw_size);
    }
    if (!raw) return NULL;
    unsigned char *user = raw + front;
    memset(user - GUARD, DBG_GUARD_BYTE, GUARD);
    memset(user + size, DBG_GUARD_BYTE, GUARD);
    if (!zero)
        memset(user, DBG_NEW_BYTE, size);
    else if (align > 16)
        memset(user, 0, size);

    dbg_home *h = home_mine();
    dbg_block *b = NULL;
    if (dbg_likely(h != NULL)) {
        lock_take(&h->lock);
        b = record_new(h);
        if (dbg_likely(b != NULL)) {
            b->user = user;
            b->size = size;
            b->front = (unsigned)front;
            b->raw_size = raw_size;
            b->freed = 0;
            b->free_ra = NULL;
            b->alloc_ra = site.ra;
            b->file = site.armed == 2 ? site.file : NULL;
            b->line = site.armed == 2 ? site.line : 0;
            header_set(user, size, b, h, LIVE_TAG);
        }
        lock_drop(&h->lock);
    }
    site.armed = 0;
    if (dbg_unlikely(!b)) {
        zm_be_free(raw, raw_size);
        errno = ENOMEM;
        return NULL;
    }
    *usable = size;
    return user;
}

void *zm_dbg_malloc(size_t size, size_t *usable) {
    return dbg_alloc(size, 0, 0, usable);
}

void *zm_dbg_calloc(size_t size, size_t *usable) {
    return dbg_alloc(size, 0, 1, usable);
}

void *zm_dbg_aligned_alloc(size_t alignment, size_t size, size_t *usable) {
    return dbg_alloc(size, alignment, 0, usable);
}

size_t zm_dbg_usable_size(const void *ptr) {
    size_t size;
    dbg_home *h;
    dbg_block *b = header_probe(ptr, LIVE_TAG, &size, &h);
    if (!b) return 0;
    /* zfree asks the size first, then frees: start fetching what the free
     * reads (the record, the tail guard) while the front end accounts. */
    __builtin_prefetch(b);
    __builtin_prefetch((const unsigned char *)ptr + size);
    return size;
}

/* ---------------------------------------------------------------------
 * Free
 * --------------------------------------------------------------------- */

/* b is ptr's record with h locked, or NULL with nothing locked. Returns,
 * still locked, if b is a live block with intact guards (guards_checked:
 * the caller just checked them); otherwise unlocks, reports and aborts. */
static inline void validate_locked(dbg_home *h, const void *ptr, dbg_block *b, const char *op,
                                   int guards_checked) {
    if (dbg_likely(b && !b->freed)) {
        if (dbg_likely(guards_checked || guards_intact(b->user, b->size))) return;
        sink s;
        zm_dbg_sink_init(&s, 0);
        check_block_slow(b, &s);
        lock_drop(&h->lock);
        zm_dbg_print_sink(&s);
        abort();
    }
    dbg_block copy = {0};
    if (b) {
        copy = *b;
        lock_drop(&h->lock);
    }
    zm_dbg_die_bad_pointer(ptr, b ? &copy : NULL, op);
}

/* Moves a validated live block (h locked) into h's quarantine, or, when it
 * is larger than the quarantine, out to the backend; trims the quarantine
 * and unlocks h. filled: the caller already wrote the freed fill and
 * header. */
static void retire_and_unlock(dbg_home *h, dbg_block *b, int filled) {
    evicted ev;
    evicted_init(&ev);
    if (dbg_unlikely(b->size > q_limit.bytes)) {
        /* Too large to quarantine: straight back, after the unlock. */
        unsigned char *raw = DBG_RAW(b);
        size_t raw_size = b->raw_size;
        record_free(h, b);
        lock_drop(&h->lock);
        zm_be_free(raw, raw_size);
        return;
    }
    if (!filled) {
        memset(b->user, DBG_FREED_BYTE, b->size);
        header_set(b->user, b->size, b, h, FREED_TAG);
    }
    b->freed = 1;
    b->free_ra = site.ra;
    size_t tail = h->q_head + h->q_count;
    if (tail >= h->ring_cap) tail -= h->ring_cap;
    h->ring[tail] = (q_entry){b, b->user, b->size};
    h->q_count++;
    h->q_bytes += b->size;
    quarantine_trim_and_unlock(h, &ev);
}

void zm_dbg_free(void *ptr, size_t usable) {
    (void)usable;
    unsigned char *user = ptr;
    dbg_home *h = NULL;
    q_limit_ensure();
    /* The expensive part, the freed fill, is done before taking the lock
     * when the header vouches for the block and its guards are intact;
     * the locked part then confirms with the record (a racing second free
     * of the same block finds it freed there). */
    size_t size;
    dbg_block *b = header_probe(user, LIVE_TAG, &size, &h);
    int filled = 0;
    if (dbg_likely(b != NULL)) {
        if (size <= q_limit.bytes && guards_intact(user, size)) {
            memset(user, DBG_FREED_BYTE, size);
            header_set(user, size, b, h, FREED_TAG);
            filled = 1;
        }
        lock_take(&h->lock);
        if (dbg_unlikely(!b->in_use || b->user != user || b->home != h)) {
            lock_drop(&h->lock);
            b = NULL;
        }
    } else {
        b = lookup_locked(ptr, &h);
    }
    validate_locked(h, ptr, b, "zfree", filled);
    retire_and_unlock(h, b, filled);
}

void *zm_dbg_realloc(void *ptr, size_t size, size_t *usable) {
    dbg_home *h = NULL;
    q_limit_ensure();
    dbg_block *b = lookup_locked(ptr, &h);
    validate_locked(h, ptr, b, "zrealloc", 0);
    size_t old = b->size;
    lock_drop(&h->lock);

    void *p = dbg_alloc(size, 0, 0, usable);
    if (!p) return NULL;
    memcpy(p, ptr, old < size ? old : size);

    b = lookup_locked(ptr, &h); /* another thread may have freed it meanwhile */
    validate_locked(h, ptr, b, "zrealloc", 0);
    retire_and_unlock(h, b, 0);
    return p;
}

/* ---------------------------------------------------------------------
 * Process hooks: fork safety, the leak report at exit
 * --------------------------------------------------------------------- */

/* Lifecycle hooks (lifecycle.c calls them in layer order: this layer's
 * prepare runs before the backend's, its parent/child after). Every home
 * is locked after the registry, in registry order; the fork child then
 * owns only the forking thread's home: the others go idle. */
void zm_dbg_fork_prepare(void) {
    pthread_mutex_lock(&registry_lock);
    for (dbg_home *h = atomic_load_explicit(&all_homes, memory_order_relaxed); h; h = h->next_all)
        lock_take(&h->lock);
}

static void fork_release(void) {
    for (dbg_home *h = atomic_load_explicit(&all_homes, memory_order_relaxed); h; h = h->next_all)
        lock_drop(&h->lock);
    pthread_mutex_unlock(&registry_lock);
}

void zm_dbg_fork_parent(void) {
    fork_release();
}

void zm_dbg_fork_child(void) {
    idle_homes = NULL;
    for (dbg_home *h = atomic_load_explicit(&all_homes, memory_order_relaxed); h; h = h->next_all) {
        if (h == my_home || h == orphan_home) continue;
        h->owned = 0;
        h->next_idle = idle_homes;
        idle_homes = h;
    }
    fork_release();
}

__attribute__((constructor)) static void dbg_init(void) {
    if (zm_option(ZM_OPT_LEAK_REPORT)) atexit(zm_dbg_leak_report_at_exit);
}
