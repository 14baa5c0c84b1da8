/* debug.c: verification mode (ZMALLOC_DEBUG=1), a layer between the front
 * end and any backend.
 *
 * Block layout. Each request of n bytes becomes one backend block:
 *
 *   raw                                          user                user+n
 *   | header (32 B)        | front guard (16 B) | n requested bytes  | tail guard (16 B) |
 *
 * The front region is 48 bytes (keeping the backend's 16-byte alignment)
 * or, for an alignment A > 16, 48 rounded up to A. Guard bytes hold
 * GUARD_BYTE, new blocks NEW_BYTE (zcalloc: zeros), freed blocks FREED_BYTE.
 *
 * Records. Every live or quarantined block has a record (user pointer,
 * size, backend pointer and size, allocation and free sites, state) kept
 * outside the block, so stray writes cannot corrupt what the checks rely
 * on. The header holds the size, the record's address and a check word
 * over pointer, size, record and state (live or freed): that is how a
 * pointer finds its record with no table lookup and no lock (usable size),
 * and a pointer zmalloc never returned fails the check. The record, read
 * under its lock, is the authority: its user pointer and state must agree.
 * A header is read only when its page is known to be mapped (same page as
 * the pointer, else mincore), so any pointer can be passed to zfree.
 *
 * Shards. Records come from NSHARDS shards, each with a mutex, a free list
 * of records, the list of its record chunks (walked by zmalloc_verify, the
 * leak report and the invalid-free diagnosis) and its quarantine. A thread
 * takes records from one shard (dealt round robin); a free locks the shard
 * of the block's record. Per operation: one lock, O(1) work besides the
 * block's own bytes. Record chunks come from zm_os_map, never from malloc
 * (the backend may itself be malloc). Only one shard lock is held at a
 * time, except by the fork handlers, which take all of them in order.
 *
 * Quarantine. A freed block keeps its record (marked freed; header re-tagged
 * freed), is filled with FREED_BYTE and queued FIFO in its shard's
 * quarantine; when the queue holds more than quarantine_blocks blocks or
 * quarantine_bytes bytes (options.h) the oldest is checked (a write after free is reported, without
 * aborting) and given back to the backend. A free whose header says freed
 * is a double free; a pointer whose header does not check out is an invalid
 * free (for an address inside a known block the report says which; a block
 * whose header alone was overwritten is reported as an underflow).
 *
 * Reports are formatted on the stack and written with write(2), outside
 * every shard lock: symbolising a site calls dladdr(), which takes the
 * dynamic loader's lock, and a thread holding that lock may be allocating.
 *
 * Allocation sites: zm_dbg_note_caller() stores the public entry point's
 * return address in thread-local storage; zmalloc_debug_site() (called by
 * the ZMALLOC_DEBUG_SITES macros in zmalloc.h just before the entry point)
 * arms a file:line that the next allocation of this thread consumes.
 */
#define _GNU_SOURCE
#include "debug.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
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

#define NSHARDS 32             /* fork_prepare holds them all: TSan tracks at most 64 held locks */
#define GUARD 16               /* guard bytes checked on each side      */
#define HEADER 32              /* size, record, check word, spare       */
#define FRONT (HEADER + GUARD) /* front region of a plain block         */
#define NEW_BYTE 0xBE          /* fresh block (not zcalloc)             */
#define GUARD_BYTE 0xFD        /* front and tail guards                 */
#define FREED_BYTE 0xDF        /* freed block in quarantine             */
#define RECORD_CHUNK ((size_t)64 << 10)
#define MAX_WRONG 8 /* wrong bytes quoted per report */

/* ---------------------------------------------------------------------
 * Data
 * --------------------------------------------------------------------- */

typedef struct dbg_block {
    struct dbg_block *hnext; /* free list of spare records              */
    struct dbg_block *qnext; /* quarantine queue, oldest first          */
    unsigned char *user;     /* what the caller got                     */
    size_t size;             /* bytes requested                         */
    unsigned char *raw;      /* the backend's block                     */
    size_t raw_size;         /* its usable size, for zm_be_free         */
    const char *file;        /* allocation site: file:line if known,    */
    int line;
    int freed;      /* 1 while in quarantine                   */
    int in_use;     /* 0: a spare record                       */
    unsigned shard; /* the shard that owns the record          */
    void *alloc_ra; /* else the caller's return address        */
    void *free_ra;  /* who freed it (quarantined blocks)       */
} dbg_block;

typedef struct shard {
    pthread_mutex_t lock;
    struct chunk *chunks; /* every record of this shard, for walks   */
    dbg_block *spare;     /* free records */
    dbg_block *q_head, *q_tail;
    size_t q_count, q_bytes;
} __attribute__((aligned(64))) shard;

typedef struct chunk {
    struct chunk *next;
    size_t n;
    dbg_block rec[];
} chunk;

/* Quarantine limits per shard (so per group of threads; one thread: all of
 * it): options quarantine_blocks and quarantine_bytes, read on first use. */
static struct {
    _Atomic int ready;
    size_t count, bytes;
} q_limit;

__attribute__((noinline, cold)) static void q_limit_load(void) {
    long long count = zm_option(ZM_OPT_QUARANTINE_BLOCKS);
    long long bytes = zm_option(ZM_OPT_QUARANTINE_BYTES);
    q_limit.count = count > 0 ? (size_t)count : 0;
    q_limit.bytes = bytes > 0 ? (size_t)bytes : 0;
    atomic_store_explicit(&q_limit.ready, 1, memory_order_release);
}

static inline void q_limit_ensure(void) {
    if (__builtin_expect(!atomic_load_explicit(&q_limit.ready, memory_order_acquire), 0))
        q_limit_load();
}

static shard shards[NSHARDS] = {[0 ... NSHARDS - 1] = {.lock = PTHREAD_MUTEX_INITIALIZER}};

/* Patterns to compare whole blocks against with memcmp. */
static const unsigned char guard_pattern[GUARD] = {[0 ... GUARD - 1] = GUARD_BYTE};
static const unsigned char freed_pattern[4096] = {[0 ... 4095] = FREED_BYTE};

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

/* Each thread allocates its records from one shard (threads are dealt
 * round robin); a free locks the shard of the block's record. */
static __thread unsigned my_shard_plus1;
static _Atomic unsigned next_shard;

static inline shard *my_shard(void) {
    if (__builtin_expect(my_shard_plus1 == 0, 0))
        my_shard_plus1 =
            atomic_fetch_add_explicit(&next_shard, 1, memory_order_relaxed) % NSHARDS + 1;
    return &shards[my_shard_plus1 - 1];
}

/* Calls fn(b, arg) for every record in use in every shard, each shard
 * under its lock. fn returns non-zero to stop. */
static void for_each_block(int (*fn)(dbg_block *, void *), void *arg) {
    for (int i = 0; i < NSHARDS; i++) {
        shard *sh = &shards[i];
        int stop = 0;
        pthread_mutex_lock(&sh->lock);
        for (chunk *c = sh->chunks; c && !stop; c = c->next)
            for (size_t j = 0; j < c->n && !stop; j++)
                if (c->rec[j].in_use) stop = fn(&c->rec[j], arg);
        pthread_mutex_unlock(&sh->lock);
        if (stop) return;
    }
}

/* The in-band header, just before the front guard: the size, the block's
 * record and a check word binding both to the pointer and the state (live
 * or freed). It is how a pointer finds its record, with no table; the
 * record, read under its shard's lock, stays the authority (its user
 * pointer and state must agree). */
enum { LIVE_TAG = 0x4c49, FREED_TAG = 0x4652 };

static inline uint64_t header_check(const unsigned char *user, size_t size, const dbg_block *rec,
                                    uint64_t tag) {
    return ((uint64_t)size * 0x9E3779B97F4A7C15ull) ^ (uint64_t)(uintptr_t)user ^
           ((uint64_t)(uintptr_t)rec * 0xC2B2AE3D27D4EB4Full) ^ (tag << 48) ^ 0x5a6d616c6c6f6321ull;
}

static inline void header_set(unsigned char *user, size_t size, dbg_block *rec, uint64_t tag) {
    uint64_t h[3] = {size, (uint64_t)(uintptr_t)rec, header_check(user, size, rec, tag)};
    memcpy(user - FRONT, h, sizeof h);
}

/* Is the header in front of user readable? It is when it lies on user's
 * own page; otherwise ask the kernel whether the page before is mapped (a
 * pointer zmalloc never returned may sit at the start of a mapping). */
static int header_readable(const unsigned char *user) {
    size_t page = zm_os_page_size();
    uintptr_t u = (uintptr_t)user;
    if (u & 15) return 0; /* every block we return is 16-byte aligned */
    if ((u & (page - 1)) >= FRONT) return 1;
    if (u < page + FRONT) return 0;
    return zm_os_probe_mapped((const void *)(u - FRONT), FRONT) == 0;
}

/* The record named by user's header if the header checks out with tag,
 * else NULL; *size receives the size. Safe for any pointer (ASan would
 * flag the read before a global or stack object that an invalid free
 * passes in, hence the attribute). */
__attribute__((no_sanitize_address)) static inline dbg_block *
header_probe(const unsigned char *user, uint64_t tag, size_t *size) {
    if (!header_readable(user)) return NULL;
    /* Plain loads, not memcpy, which ASan intercepts whatever the attribute. */
    const uint64_t *h = (const uint64_t *)((uintptr_t)user - FRONT);
    dbg_block *rec = (dbg_block *)(uintptr_t)h[1];
    if (h[0] == 0 || h[0] >= SIZE_MAX / 2 || h[2] != header_check(user, h[0], rec, tag))
        return NULL;
    *size = (size_t)h[0];
    return rec;
}

/* ---------------------------------------------------------------------
 * Problems: what was found wrong, collected under a lock, printed after
 * --------------------------------------------------------------------- */

enum { P_OVERFLOW, P_UNDERFLOW, P_USE_AFTER_FREE, P_DOUBLE_FREE, P_INVALID_FREE };

typedef struct problem {
    int kind;
    dbg_block b;         /* copy of the record                    */
    size_t nwrong;       /* bytes found wrong in total            */
    long off[MAX_WRONG]; /* offsets from the user pointer      */
    unsigned char val[MAX_WRONG];
} problem;

/* Appends bytes of p[0..len) that differ from want (offsets relative to
 * the user pointer: base + i). Fast when nothing differs. */
static void scan(problem *pr, const unsigned char *p, size_t len, unsigned char want, long base) {
    const unsigned char *pat = want == FREED_BYTE ? freed_pattern : guard_pattern;
    size_t chunk = want == FREED_BYTE ? sizeof freed_pattern : sizeof guard_pattern;
    for (size_t i = 0; i < len; i += chunk) {
        size_t n = len - i < chunk ? len - i : chunk;
        if (memcmp(p + i, pat, n) == 0) continue;
        for (size_t j = i; j < i + n; j++) {
            if (p[j] == want) continue;
            if (pr->nwrong < MAX_WRONG) {
                pr->off[pr->nwrong] = base + (long)j;
                pr->val[pr->nwrong] = p[j];
            }
            pr->nwrong++;
        }
    }
}

/* A growable list of problems. The fixed part serves the free path; verify
 * grows it with zm_os_map. Problems beyond capacity are counted only. */
typedef struct sink {
    problem *items;
    size_t n, cap, lost;
    int growable;
    problem local[4];
} sink;

static void sink_init(sink *s, int growable) {
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

static void sink_free(sink *s) {
    if (s->items != s->local) zm_os_unmap(s->items, s->cap * sizeof(problem));
}

/* Checks a block's guards (and, when freed, its freed fill). Records each
 * kind of damage as one problem in s; returns how many. */
static int check_block(const dbg_block *b, sink *s) {
    int found = 0;
    problem pr;
    pr.nwrong = 0;
    scan(&pr, b->user - GUARD, GUARD, GUARD_BYTE, -GUARD);
    if (pr.nwrong) {
        problem *p = sink_add(s);
        if (p) *p = pr, p->kind = P_UNDERFLOW, p->b = *b;
        found++;
    }
    pr.nwrong = 0;
    scan(&pr, b->user + b->size, GUARD, GUARD_BYTE, (long)b->size);
    if (pr.nwrong) {
        problem *p = sink_add(s);
        if (p) *p = pr, p->kind = P_OVERFLOW, p->b = *b;
        found++;
    }
    if (b->freed) {
        pr.nwrong = 0;
        scan(&pr, b->user, b->size, FREED_BYTE, 0);
        if (pr.nwrong) {
            problem *p = sink_add(s);
            if (p) *p = pr, p->kind = P_USE_AFTER_FREE, p->b = *b;
            found++;
        }
    }
    return found;
}

/* ---------------------------------------------------------------------
 * Reporting
 * --------------------------------------------------------------------- */

typedef struct line_buf {
    char s[1536];
    size_t len;
} line_buf;

static void put(line_buf *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(line_buf *l, const char *fmt, ...) {
    if (l->len >= sizeof l->s - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l->s + l->len, sizeof l->s - l->len, fmt, ap);
    va_end(ap);
    if (n > 0) l->len += (size_t)n;
    if (l->len > sizeof l->s - 1) l->len = sizeof l->s - 1;
}

static void put_site(line_buf *l, const char *file, int line, void *ra) {
    if (file) {
        put(l, "%s:%d", file, line);
        return;
    }
    if (!ra) {
        put(l, "an unknown site");
        return;
    }
    Dl_info info;
    if (dladdr(ra, &info) && info.dli_fname) {
        const char *mod = strrchr(info.dli_fname, '/');
        mod = mod ? mod + 1 : info.dli_fname;
        if (info.dli_sname)
            put(l, "%p (%s+0x%lx in %s)", ra, info.dli_sname,
                (unsigned long)((char *)ra - (char *)info.dli_saddr), mod);
        else
            put(l, "%p (%s+0x%lx)", ra, mod, (unsigned long)((char *)ra - (char *)info.dli_fbase));
    } else {
        put(l, "%p", ra);
    }
}

static void flush_line(line_buf *l) {
    put(l, "\n");
    zm_os_write_all(2, l->s, l->len);
    l->len = 0;
}

static void put_wrong(line_buf *l, const problem *p, unsigned expected) {
    put(l,
        "; %zu byte%s found wrong (offset from the block start=value, expected 0x%02x):", p->nwrong,
        p->nwrong == 1 ? "" : "s", expected);
    size_t shown = p->nwrong < MAX_WRONG ? p->nwrong : MAX_WRONG;
    for (size_t i = 0; i < shown; i++)
        put(l, " %ld=0x%02x", p->off[i], p->val[i]);
    if (shown < p->nwrong) put(l, " ...");
}

static void print_problem(const problem *p) {
    line_buf l = {.len = 0};
    const dbg_block *b = &p->b;
    switch (p->kind) {
    case P_OVERFLOW:
    case P_UNDERFLOW:
        put(&l, "zmalloc: heap %s: %sblock %p of %zu bytes allocated at ",
            p->kind == P_OVERFLOW ? "overflow" : "underflow", b->freed ? "freed " : "",
            (void *)b->user, b->size);
        put_site(&l, b->file, b->line, b->alloc_ra);
        put(&l, ", written %s", p->kind == P_OVERFLOW ? "past its end" : "before its start");
        put_wrong(&l, p, GUARD_BYTE);
        break;
    case P_USE_AFTER_FREE:
        put(&l, "zmalloc: use after free: block %p of %zu bytes allocated at ", (void *)b->user,
            b->size);
        put_site(&l, b->file, b->line, b->alloc_ra);
        put(&l, ", freed at ");
        put_site(&l, NULL, 0, b->free_ra);
        put(&l, ", was written after it was freed");
        put_wrong(&l, p, FREED_BYTE);
        break;
    }
    flush_line(&l);
}

static void print_sink(const sink *s) {
    for (size_t i = 0; i < s->n; i++)
        print_problem(&s->items[i]);
    if (s->lost) {
        line_buf l = {.len = 0};
        put(&l, "zmalloc: ... and %zu more problems not shown", s->lost);
        flush_line(&l);
    }
}

/* ---------------------------------------------------------------------
 * Records and hash table (caller holds the shard's lock)
 * --------------------------------------------------------------------- */

static dbg_block *record_new(shard *sh) {
    if (!sh->spare) {
        chunk *c = zm_os_map(RECORD_CHUNK);
        if (!c) return NULL;
        REGISTER_ROOTS(c, RECORD_CHUNK);
        c->n = (RECORD_CHUNK - sizeof(chunk)) / sizeof(dbg_block);
        c->next = sh->chunks;
        sh->chunks = c;
        for (size_t i = c->n; i-- > 0;) {
            c->rec[i].shard = (unsigned)(sh - shards);
            c->rec[i].hnext = sh->spare;
            sh->spare = &c->rec[i];
        }
    }
    dbg_block *b = sh->spare;
    sh->spare = b->hnext;
    b->in_use = 1;
    return b;
}

static void record_free(shard *sh, dbg_block *b) {
    b->in_use = 0;
    b->hnext = sh->spare;
    sh->spare = b;
}

/* ptr's record, found through its header (live or freed), with the
 * record's shard locked (*out); NULL, nothing locked, when ptr is not the
 * start of a block we know. */
static dbg_block *lookup_locked(const void *ptr, shard **out) {
    size_t size;
    dbg_block *b = header_probe(ptr, LIVE_TAG, &size);
    if (!b) b = header_probe(ptr, FREED_TAG, &size);
    if (!b) return NULL;
    shard *sh = &shards[b->shard]; /* fixed for the record's lifetime */
    pthread_mutex_lock(&sh->lock);
    if (!b->in_use || b->user != ptr) {
        pthread_mutex_unlock(&sh->lock);
        return NULL;
    }
    *out = sh;
    return b;
}

/* Blocks taken out of a quarantine under the lock, checked and given back
 * to the backend after it (they are still ours until then). */
typedef struct evicted {
    size_t n;
    dbg_block b[16];
} evicted;

static void release_evicted(const dbg_block *b, sink *s) {
    check_block(b, s);
    zm_be_free(b->raw, b->raw_size);
}

/* Takes the oldest quarantined block out of the shard (sh locked) into ev,
 * or, when ev is NULL or full, checks and releases it at once. */
static void quarantine_evict_one(shard *sh, evicted *ev, sink *s) {
    dbg_block *b = sh->q_head;
    sh->q_head = b->qnext;
    if (!sh->q_head) sh->q_tail = NULL;
    sh->q_count--;
    sh->q_bytes -= b->size;
    if (ev && ev->n < sizeof ev->b / sizeof ev->b[0])
        ev->b[ev->n++] = *b;
    else
        release_evicted(b, s);
    record_free(sh, b);
}

static void finish_evicted(evicted *ev, sink *s) {
    for (size_t i = 0; i < ev->n; i++)
        release_evicted(&ev->b[i], s);
    if (s->n || s->lost) print_sink(s);
}

/* Empties every quarantine (before giving up on an allocation). */
static void quarantine_drain(void) {
    for (int i = 0; i < NSHARDS; i++) {
        sink s;
        sink_init(&s, 0);
        pthread_mutex_lock(&shards[i].lock);
        while (shards[i].q_head)
            quarantine_evict_one(&shards[i], NULL, &s);
        pthread_mutex_unlock(&shards[i].lock);
        print_sink(&s);
    }
}

/* ---------------------------------------------------------------------
 * Allocation
 * --------------------------------------------------------------------- */

static void *dbg_alloc(size_t size, size_t align, int zero, size_t *usable) {
    /* FRONT, rounded up to the alignment (the backend aligns raw). */
    size_t front = align > 16 ? (FRONT + align - 1) & ~(align - 1) : FRONT;
    size_t total = front + size + GUARD, raw_size = 0;
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
    memset(user - GUARD, GUARD_BYTE, GUARD);
    memset(user + size, GUARD_BYTE, GUARD);
    if (!zero)
        memset(user, NEW_BYTE, size);
    else if (align > 16)
        memset(user, 0, size);

    shard *sh = my_shard();
    pthread_mutex_lock(&sh->lock);
    dbg_block *b = record_new(sh);
    if (b) {
        b->user = user;
        b->size = size;
        b->raw = raw;
        b->raw_size = raw_size;
        b->freed = 0;
        b->qnext = NULL;
        b->free_ra = NULL;
        b->alloc_ra = site.ra;
        b->file = site.armed == 2 ? site.file : NULL;
        b->line = site.armed == 2 ? site.line : 0;
    }
    pthread_mutex_unlock(&sh->lock);
    site.armed = 0;
    if (!b) {
        zm_be_free(raw, raw_size);
        errno = ENOMEM;
        return NULL;
    }
    header_set(user, size, b, LIVE_TAG);
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
    return header_probe(ptr, LIVE_TAG, &size) ? size : 0;
}

/* ---------------------------------------------------------------------
 * Free, and the fatal reports
 * --------------------------------------------------------------------- */

/* Looks for a block whose backend memory contains p, for the invalid-free
 * report. O(blocks); runs only on the way to abort(). */
typedef struct container_search {
    const unsigned char *p;
    dbg_block found;
    int ok;
} container_search;

static int container_fn(dbg_block *b, void *arg) {
    container_search *cs = arg;
    if (cs->p < b->raw || cs->p >= b->user + b->size + GUARD) return 0;
    cs->found = *b;
    cs->ok = 1;
    return 1;
}

static int find_container(const void *p, dbg_block *out) {
    container_search cs = {.p = p, .ok = 0};
    for_each_block(container_fn, &cs);
    if (cs.ok) *out = cs.found;
    return cs.ok;
}

static __attribute__((noreturn)) void die_bad_pointer(const void *ptr, const dbg_block *freed,
                                                      const char *op) {
    line_buf l = {.len = 0};
    if (freed) {
        put(&l, "zmalloc: double free of %p (%s): block of %zu bytes allocated at ", ptr, op,
            freed->size);
        put_site(&l, freed->file, freed->line, freed->alloc_ra);
        put(&l, ", already freed at ");
        put_site(&l, NULL, 0, freed->free_ra);
        put(&l, ", freed again at ");
        put_site(&l, NULL, 0, site.ra);
    } else {
        dbg_block c = {0};
        if (find_container(ptr, &c) && c.user == ptr && !c.freed) {
            /* Its header, before the checked guard bytes, was overwritten. */
            put(&l, "zmalloc: heap underflow: block %p of %zu bytes allocated at ", ptr, c.size);
            put_site(&l, c.file, c.line, c.alloc_ra);
            put(&l, ", written before its start: the %d bytes before its guard zone are wrong",
                HEADER);
            flush_line(&l);
            abort();
        }
        put(&l, "zmalloc: invalid free of %p (%s) at ", ptr, op);
        put_site(&l, NULL, 0, site.ra);
        put(&l, ": not a block zmalloc returned");
        if (find_container(ptr, &c)) {
            long off = (long)((const unsigned char *)ptr - c.user);
            put(&l, "; it points %ld bytes %s %s block %p of %zu bytes allocated at ",
                off < 0 ? -off : off, off < 0 ? "before" : "into", c.freed ? "freed" : "live",
                (void *)c.user, c.size);
            put_site(&l, c.file, c.line, c.alloc_ra);
        }
    }
    flush_line(&l);
    abort();
}

/* b is ptr's record with sh locked, or NULL with nothing locked. Returns,
 * still locked, if b is a live block with intact guards; otherwise unlocks,
 * reports and aborts. */
static void validate_locked(shard *sh, const void *ptr, dbg_block *b, const char *op) {
    if (b && !b->freed) {
        sink s;
        sink_init(&s, 0);
        if (!check_block(b, &s)) return;
        pthread_mutex_unlock(&sh->lock);
        print_sink(&s);
        abort();
    }
    dbg_block copy = {0};
    if (b) {
        copy = *b;
        pthread_mutex_unlock(&sh->lock);
    }
    die_bad_pointer(ptr, b ? &copy : NULL, op);
}

/* Moves a validated live block to its shard's quarantine (a block larger
 * than the quarantine goes straight back to the backend), evicting the
 * oldest blocks beyond the limits into ev. sh is locked. filled: the caller
 * already wrote the freed fill and header. */
static void retire_locked(shard *sh, dbg_block *b, int filled, evicted *ev, sink *s) {
    if (b->size > q_limit.bytes) {
        zm_be_free(b->raw, b->raw_size);
        record_free(sh, b);
        return;
    }
    if (!filled) {
        memset(b->user, FREED_BYTE, b->size);
        header_set(b->user, b->size, b, FREED_TAG);
    }
    b->freed = 1;
    b->free_ra = site.ra;
    b->qnext = NULL;
    if (sh->q_tail)
        sh->q_tail->qnext = b;
    else
        sh->q_head = b;
    sh->q_tail = b;
    sh->q_count++;
    sh->q_bytes += b->size;
    while (sh->q_count > q_limit.count || sh->q_bytes > q_limit.bytes)
        quarantine_evict_one(sh, ev, s);
}

void zm_dbg_free(void *ptr, size_t usable) {
    (void)usable;
    unsigned char *user = ptr;
    shard *sh = NULL;
    /* The expensive part, the freed fill, is done before taking the lock
     * when the header vouches for the block and its guards are intact;
     * the locked part then confirms with the record (a racing second free
     * of the same block finds it freed there). */
    size_t size;
    q_limit_ensure();
    dbg_block *b = header_probe(user, LIVE_TAG, &size);
    int filled = 0;
    if (b) {
        if (size <= q_limit.bytes && memcmp(user - GUARD, guard_pattern, GUARD) == 0 &&
            memcmp(user + size, guard_pattern, GUARD) == 0) {
            memset(user, FREED_BYTE, size);
            header_set(user, size, b, FREED_TAG);
            filled = 1;
        }
        sh = &shards[b->shard];
        pthread_mutex_lock(&sh->lock);
        if (!b->in_use || b->user != user) {
            pthread_mutex_unlock(&sh->lock);
            b = NULL;
        }
    } else {
        b = lookup_locked(ptr, &sh);
    }
    validate_locked(sh, ptr, b, "zfree");
    evicted ev;
    ev.n = 0;
    sink s;
    sink_init(&s, 0);
    retire_locked(sh, b, filled, &ev, &s);
    pthread_mutex_unlock(&sh->lock);
    finish_evicted(&ev, &s);
}

void *zm_dbg_realloc(void *ptr, size_t size, size_t *usable) {
    shard *sh = NULL;
    dbg_block *b = lookup_locked(ptr, &sh);
    validate_locked(sh, ptr, b, "zrealloc");
    size_t old = b->size;
    pthread_mutex_unlock(&sh->lock);

    void *p = dbg_alloc(size, 0, 0, usable);
    if (!p) return NULL;
    memcpy(p, ptr, old < size ? old : size);

    q_limit_ensure();
    b = lookup_locked(ptr, &sh); /* another thread may have freed it meanwhile */
    validate_locked(sh, ptr, b, "zrealloc");
    evicted ev;
    ev.n = 0;
    sink s;
    sink_init(&s, 0);
    retire_locked(sh, b, 0, &ev, &s);
    pthread_mutex_unlock(&sh->lock);
    finish_evicted(&ev, &s);
    return p;
}

/* ---------------------------------------------------------------------
 * zmalloc_verify
 * --------------------------------------------------------------------- */

typedef struct verify_state {
    sink s;
    int found;
} verify_state;

static int verify_fn(dbg_block *b, void *arg) {
    verify_state *v = arg;
    v->found += check_block(b, &v->s);
    return 0;
}

int zmalloc_verify(void) {
    verify_state v;
    sink_init(&v.s, 1);
    v.found = 0;
    for_each_block(verify_fn, &v);
    print_sink(&v.s);
    sink_free(&v.s);
    return v.found;
}

/* ---------------------------------------------------------------------
 * Leak report
 * --------------------------------------------------------------------- */

typedef struct leak {
    const char *file;
    void *ra;
    int line;
    size_t blocks, bytes;
} leak;

static int site_cmp(const leak *a, const leak *b) {
    if (!a->file != !b->file) return a->file ? -1 : 1;
    if (a->file) {
        int c = a->file == b->file ? 0 : strcmp(a->file, b->file);
        if (c) return c;
        return (a->line > b->line) - (a->line < b->line);
    }
    return (a->ra > b->ra) - (a->ra < b->ra);
}

static int size_cmp(const leak *a, const leak *b) {
    if (a->bytes != b->bytes) return a->bytes > b->bytes ? -1 : 1;
    if (a->blocks != b->blocks) return a->blocks > b->blocks ? -1 : 1;
    return site_cmp(a, b);
}

/* Heapsort: qsort may call malloc, which may be us. */
static void sift(leak *v, size_t i, size_t n, int (*cmp)(const leak *, const leak *)) {
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && cmp(&v[c + 1], &v[c]) > 0) c++;
        if (cmp(&v[c], &v[i]) <= 0) return;
        leak t = v[i];
        v[i] = v[c];
        v[c] = t;
        i = c;
    }
}

static void sort_leaks(leak *v, size_t n, int (*cmp)(const leak *, const leak *)) {
    for (size_t i = n / 2; i-- > 0;)
        sift(v, i, n, cmp);
    for (size_t end = n; end-- > 1;) {
        leak t = v[0];
        v[0] = v[end];
        v[end] = t;
        sift(v, 0, end, cmp);
    }
}

typedef struct leak_list {
    leak *v;
    size_t n, cap, total_bytes, unlisted;
} leak_list;

static int leak_fn(dbg_block *b, void *arg) {
    leak_list *l = arg;
    if (b->freed) return 0;
    l->total_bytes += b->size;
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 4096;
        leak *nv = zm_os_map(ncap * sizeof *nv);
        if (!nv) {
            l->unlisted++;
            return 0;
        }
        if (l->v) {
            memcpy(nv, l->v, l->n * sizeof *nv);
            zm_os_unmap(l->v, l->cap * sizeof *nv);
        }
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = (leak){b->file, b->file ? NULL : b->alloc_ra, b->line, 1, b->size};
    return 0;
}

size_t zmalloc_report_leaks(FILE *out) {
    leak_list list = {0};
    for_each_block(leak_fn, &list);
    leak *v = list.v;
    size_t n = list.n, cap = list.cap, total_bytes = list.total_bytes, unlisted = list.unlisted;
    size_t live = n + unlisted;
    /* Group by site, then order the groups by bytes. */
    sort_leaks(v, n, site_cmp);
    size_t groups = 0;
    for (size_t i = 0; i < n; i++) {
        if (groups && site_cmp(&v[groups - 1], &v[i]) == 0) {
            v[groups - 1].blocks++;
            v[groups - 1].bytes += v[i].bytes;
        } else {
            v[groups++] = v[i];
        }
    }
    sort_leaks(v, groups, size_cmp);
    fprintf(out,
            "zmalloc: leak report: %zu live block%s, %zu bytes, from %zu allocation site%s%s\n",
            live, live == 1 ? "" : "s", total_bytes, groups, groups == 1 ? "" : "s",
            groups ? ", largest first:" : "");
    for (size_t i = 0; i < groups; i++) {
        line_buf l = {.len = 0};
        put_site(&l, v[i].file, v[i].line, v[i].ra);
        fprintf(out, "  %zu bytes in %zu block%s allocated at %.*s\n", v[i].bytes, v[i].blocks,
                v[i].blocks == 1 ? "" : "s", (int)l.len, l.s);
    }
    if (unlisted) fprintf(out, "  (%zu blocks not listed: out of memory)\n", unlisted);
    fflush(out);
    if (v) zm_os_unmap(v, cap * sizeof *v);
    return live;
}

/* ---------------------------------------------------------------------
 * Process hooks: fork safety, the leak report at exit
 * --------------------------------------------------------------------- */

/* Lifecycle hooks (lifecycle.c calls them in layer order: this layer's
 * prepare runs before the backend's, its parent/child after). */
void zm_dbg_fork_prepare(void) {
    for (int i = 0; i < NSHARDS; i++)
        pthread_mutex_lock(&shards[i].lock);
}

static void fork_release(void) {
    for (int i = NSHARDS; i-- > 0;)
        pthread_mutex_unlock(&shards[i].lock);
}

void zm_dbg_fork_parent(void) {
    fork_release();
}

void zm_dbg_fork_child(void) {
    fork_release();
}

static void leak_report_at_exit(void) {
    zmalloc_report_leaks(stderr);
}

__attribute__((constructor)) static void dbg_init(void) {
    if (zm_option(ZM_OPT_LEAK_REPORT)) atexit(leak_report_at_exit);
}
