/* debug.c: verification mode (ZMALLOC_DEBUG=1), a layer between the front
 * end and any backend.
 *
 * Block layout. Each request of n bytes becomes one backend block:
 *
 *     raw                                   user                  user+n
 *     | header (16 B) | front guard (16 B) | n requested bytes    | tail guard (16 B) |
 *
 * The front region is 32 bytes (keeping the backend's 16-byte alignment) or,
 * for an alignment A > 32, A bytes of which the last 32 are header and
 * guard. The header (size, and a check word over pointer, size and state)
 * is a hint that lets zm_dbg_usable_size() and the start of a free skip the
 * lock; the table below stays the authority. Guard
 * bytes hold GUARD_BYTE, new blocks NEW_BYTE (zcalloc: zeros), freed blocks
 * FREED_BYTE. Nothing the layer needs lives inside the block, so a stray
 * write can damage only guard bytes, which is what we look for.
 *
 * Block records. Every live or quarantined block has a record (user
 * pointer, size, backend pointer and size, allocation site, free site) in a
 * hash table keyed by the user pointer. The table is split into NSHARDS
 * shards chosen by a hash of the pointer, each with its own mutex, chained
 * buckets that double when full, and its own free list of records, so an
 * operation takes one uncontended lock and does O(1) work besides touching
 * the block's bytes. Records and bucket arrays come from zm_os_map, never
 * from malloc: the backend may itself be malloc. Only one shard lock is
 * ever held at a time; fork handlers take all of them in order.
 *
 * Quarantine. A freed block keeps its record (marked freed), is filled with
 * FREED_BYTE and queued FIFO in its shard's quarantine; when the queue holds
 * more than Q_COUNT blocks or Q_BYTES bytes the oldest is checked (a write
 * after free is reported, without aborting), unlinked and given back to the
 * backend. A free of a block still in quarantine is a double free; a free
 * of a pointer with no record is an invalid free (for an address inside a
 * known block the report says which). zmalloc_verify() walks every record.
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
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
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
#define HEADER 16              /* size and check word before the guard  */
#define FRONT (HEADER + GUARD) /* front region of a plain block         */
#define NEW_BYTE 0xBE          /* fresh block (not zcalloc)             */
#define GUARD_BYTE 0xFD        /* front and tail guards                 */
#define FREED_BYTE 0xDF        /* freed block in quarantine             */
#define Q_COUNT 64             /* per shard: 2048 blocks in all ...     */
#define Q_BYTES ((size_t)128 << 10) /* ... and at most 4 MiB                */
#define INITIAL_BUCKETS 1024
#define RECORD_CHUNK ((size_t)64 << 10)
#define MAX_WRONG 8 /* wrong bytes quoted per report */

/* ---------------------------------------------------------------------
 * Data
 * --------------------------------------------------------------------- */

typedef struct dbg_block {
    struct dbg_block *hnext; /* hash chain                              */
    struct dbg_block *qnext; /* quarantine queue, oldest first          */
    unsigned char *user;     /* what the caller got                     */
    size_t size;             /* bytes requested                         */
    unsigned char *raw;      /* the backend's block                     */
    size_t raw_size;         /* its usable size, for zm_be_free         */
    const char *file;        /* allocation site: file:line if known,    */
    int line;
    int freed;      /* 1 while in quarantine                   */
    void *alloc_ra; /* else the caller's return address        */
    void *free_ra;  /* who freed it (quarantined blocks)       */
} dbg_block;

typedef struct shard {
    pthread_mutex_t lock;
    dbg_block **buckets;
    size_t mask; /* buckets - 1 */
    size_t count;
    dbg_block *spare; /* free records */
    dbg_block *q_head, *q_tail;
    size_t q_count, q_bytes;
} __attribute__((aligned(64))) shard;

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

static inline shard *shard_of(const void *p, size_t *hash) {
    uint64_t h = ((uint64_t)(uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    *hash = (size_t)(h >> 6);
    return &shards[h & (NSHARDS - 1)];
}

/* The in-band header: two words just before the front guard, a copy of the
 * size and a check word binding it to the pointer and the state. It lets
 * zm_dbg_usable_size() and the start of a free run without a lock; the
 * table stays the authority (a header that does not check out sends the
 * caller to the locked path). */
enum { LIVE_TAG = 0x4c49, FREED_TAG = 0x4652 };

static inline uint64_t header_check(const unsigned char *user, size_t size, uint64_t tag) {
    return ((uint64_t)size * 0x9E3779B97F4A7C15ull) ^ (uint64_t)(uintptr_t)user ^ (tag << 48) ^
           0x5a6d616c6c6f6321ull;
}

static inline void header_set(unsigned char *user, size_t size, uint64_t tag) {
    uint64_t h[2] = {size, header_check(user, size, tag)};
    memcpy(user - FRONT, h, sizeof h);
}

/* The size of the live block at user if its header checks out, else 0.
 * Reads the header only when it lies on user's own page (mapped), so any
 * pointer is safe to ask about (ASan would flag the read before a global
 * or stack object that an invalid free passes in, hence the attribute). */
__attribute__((no_sanitize_address)) static inline size_t
header_live_size(const unsigned char *user) {
    if (((uintptr_t)user & 4095) < FRONT) return 0;
    uint64_t h[2];
    memcpy(h, user - FRONT, sizeof h);
    if (h[0] == 0 || h[0] >= SIZE_MAX / 2 || h[1] != header_check(user, h[0], LIVE_TAG)) return 0;
    return (size_t)h[0];
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
    size_t off = 0;
    while (off < l->len) {
        ssize_t n = write(2, l->s + off, l->len - off);
        if (n <= 0) break;
        off += (size_t)n;
    }
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
        dbg_block *chunk = zm_os_map(RECORD_CHUNK);
        if (!chunk) return NULL;
        REGISTER_ROOTS(chunk, RECORD_CHUNK);
        size_t n = RECORD_CHUNK / sizeof(dbg_block);
        for (size_t i = 0; i < n; i++) {
            chunk[i].hnext = sh->spare;
            sh->spare = &chunk[i];
        }
    }
    dbg_block *b = sh->spare;
    sh->spare = b->hnext;
    return b;
}

static void record_free(shard *sh, dbg_block *b) {
    b->hnext = sh->spare;
    sh->spare = b;
}

/* Doubles the bucket array; on failure keeps the old one (longer chains). */
static void table_grow(shard *sh) {
    size_t n = sh->buckets ? (sh->mask + 1) * 2 : INITIAL_BUCKETS;
    dbg_block **nb = zm_os_map(n * sizeof *nb);
    if (!nb) return;
    if (sh->buckets) {
        for (size_t i = 0; i <= sh->mask; i++) {
            for (dbg_block *b = sh->buckets[i], *next; b; b = next) {
                next = b->hnext;
                size_t h;
                shard_of(b->user, &h);
                b->hnext = nb[h & (n - 1)];
                nb[h & (n - 1)] = b;
            }
        }
        zm_os_unmap(sh->buckets, (sh->mask + 1) * sizeof *nb);
    }
    sh->buckets = nb;
    sh->mask = n - 1;
}

static int table_insert(shard *sh, size_t hash, dbg_block *b) {
    if (!sh->buckets || sh->count > sh->mask) table_grow(sh);
    if (!sh->buckets) return 0;
    dbg_block **head = &sh->buckets[hash & sh->mask];
    b->hnext = *head;
    *head = b;
    sh->count++;
    return 1;
}

static dbg_block *table_find(shard *sh, size_t hash, const void *user) {
    if (!sh->buckets) return NULL;
    for (dbg_block *b = sh->buckets[hash & sh->mask]; b; b = b->hnext)
        if (b->user == user) return b;
    return NULL;
}

static void table_remove(shard *sh, dbg_block *b) {
    size_t h;
    shard_of(b->user, &h);
    for (dbg_block **pp = &sh->buckets[h & sh->mask]; *pp; pp = &(*pp)->hnext) {
        if (*pp == b) {
            *pp = b->hnext;
            sh->count--;
            return;
        }
    }
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
    table_remove(sh, b);
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
    size_t front = align > FRONT ? align : FRONT;
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
    header_set(user, size, LIVE_TAG);
    memset(user - GUARD, GUARD_BYTE, GUARD);
    memset(user + size, GUARD_BYTE, GUARD);
    if (!zero)
        memset(user, NEW_BYTE, size);
    else if (align > 16)
        memset(user, 0, size);

    size_t hash;
    shard *sh = shard_of(user, &hash);
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
        if (!table_insert(sh, hash, b)) {
            record_free(sh, b);
            b = NULL;
        }
    }
    pthread_mutex_unlock(&sh->lock);
    site.armed = 0;
    if (!b) {
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
    size_t size = header_live_size(ptr);
    if (__builtin_expect(size != 0, 1)) return size;
    size_t hash;
    shard *sh = shard_of(ptr, &hash);
    pthread_mutex_lock(&sh->lock);
    dbg_block *b = table_find(sh, hash, ptr);
    if (b && !b->freed) size = b->size;
    pthread_mutex_unlock(&sh->lock);
    return size;
}

/* ---------------------------------------------------------------------
 * Free, and the fatal reports
 * --------------------------------------------------------------------- */

/* Looks for a block whose backend memory contains p, for the invalid-free
 * report. O(blocks); runs only on the way to abort(). */
static int find_container(const void *p, dbg_block *out) {
    const unsigned char *q = p;
    for (int i = 0; i < NSHARDS; i++) {
        shard *sh = &shards[i];
        int found = 0;
        pthread_mutex_lock(&sh->lock);
        for (size_t j = 0; sh->buckets && j <= sh->mask && !found; j++) {
            for (dbg_block *b = sh->buckets[j]; b; b = b->hnext) {
                if (q >= b->raw && q < b->user + b->size + GUARD) {
                    *out = *b;
                    found = 1;
                    break;
                }
            }
        }
        pthread_mutex_unlock(&sh->lock);
        if (found) return 1;
    }
    return 0;
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

/* Called with sh locked and b = ptr's record (or NULL). Returns, still
 * locked, if b is a live block with intact guards; otherwise unlocks,
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
    if (b) copy = *b;
    pthread_mutex_unlock(&sh->lock);
    die_bad_pointer(ptr, b ? &copy : NULL, op);
}

/* Moves a validated live block to its shard's quarantine (a block larger
 * than the quarantine goes straight back to the backend), evicting the
 * oldest blocks beyond the limits into ev. sh is locked. filled: the caller
 * already wrote the freed fill and header. */
static void retire_locked(shard *sh, dbg_block *b, int filled, evicted *ev, sink *s) {
    if (b->size > Q_BYTES) {
        table_remove(sh, b);
        zm_be_free(b->raw, b->raw_size);
        record_free(sh, b);
        return;
    }
    if (!filled) {
        memset(b->user, FREED_BYTE, b->size);
        header_set(b->user, b->size, FREED_TAG);
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
    while (sh->q_count > Q_COUNT || sh->q_bytes > Q_BYTES)
        quarantine_evict_one(sh, ev, s);
}

void zm_dbg_free(void *ptr, size_t usable) {
    (void)usable;
    unsigned char *user = ptr;
    /* The expensive part, the freed fill, is done before taking the lock
     * when the header vouches for the block and its guards are intact;
     * otherwise the locked path below checks (and reports) everything. */
    size_t size = header_live_size(user);
    int filled = 0;
    if (size && size <= Q_BYTES && memcmp(user - GUARD, guard_pattern, GUARD) == 0 &&
        memcmp(user + size, guard_pattern, GUARD) == 0) {
        memset(user, FREED_BYTE, size);
        header_set(user, size, FREED_TAG);
        filled = 1;
    }
    size_t hash;
    shard *sh = shard_of(ptr, &hash);
    evicted ev;
    ev.n = 0;
    sink s;
    sink_init(&s, 0);
    pthread_mutex_lock(&sh->lock);
    dbg_block *b = table_find(sh, hash, ptr);
    validate_locked(sh, ptr, b, "zfree");
    retire_locked(sh, b, filled, &ev, &s);
    pthread_mutex_unlock(&sh->lock);
    finish_evicted(&ev, &s);
}

void *zm_dbg_realloc(void *ptr, size_t size, size_t *usable) {
    size_t hash;
    shard *sh = shard_of(ptr, &hash);
    pthread_mutex_lock(&sh->lock);
    dbg_block *b = table_find(sh, hash, ptr);
    validate_locked(sh, ptr, b, "zrealloc");
    size_t old = b->size;
    pthread_mutex_unlock(&sh->lock);

    void *p = dbg_alloc(size, 0, 0, usable);
    if (!p) return NULL;
    memcpy(p, ptr, old < size ? old : size);

    evicted ev;
    ev.n = 0;
    sink s;
    sink_init(&s, 0);
    pthread_mutex_lock(&sh->lock);
    b = table_find(sh, hash, ptr); /* another thread may have freed it meanwhile */
    validate_locked(sh, ptr, b, "zrealloc");
    retire_locked(sh, b, 0, &ev, &s);
    pthread_mutex_unlock(&sh->lock);
    finish_evicted(&ev, &s);
    return p;
}

/* ---------------------------------------------------------------------
 * zmalloc_verify
 * --------------------------------------------------------------------- */

int zmalloc_verify(void) {
    sink s;
    sink_init(&s, 1);
    int found = 0;
    for (int i = 0; i < NSHARDS; i++) {
        shard *sh = &shards[i];
        pthread_mutex_lock(&sh->lock);
        for (size_t j = 0; sh->buckets && j <= sh->mask; j++)
            for (dbg_block *b = sh->buckets[j]; b; b = b->hnext)
                found += check_block(b, &s);
        pthread_mutex_unlock(&sh->lock);
    }
    print_sink(&s);
    sink_free(&s);
    return found;
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

size_t zmalloc_report_leaks(FILE *out) {
    leak *v = NULL;
    size_t n = 0, cap = 0, total_bytes = 0, unlisted = 0;
    for (int i = 0; i < NSHARDS; i++) {
        shard *sh = &shards[i];
        pthread_mutex_lock(&sh->lock);
        for (size_t j = 0; sh->buckets && j <= sh->mask; j++) {
            for (dbg_block *b = sh->buckets[j]; b; b = b->hnext) {
                if (b->freed) continue;
                total_bytes += b->size;
                if (n == cap) {
                    size_t ncap = cap ? cap * 2 : 4096;
                    leak *nv = zm_os_map(ncap * sizeof *nv);
                    if (!nv) {
                        unlisted++;
                        continue;
                    }
                    if (v) {
                        memcpy(nv, v, n * sizeof *nv);
                        zm_os_unmap(v, cap * sizeof *v);
                    }
                    v = nv;
                    cap = ncap;
                }
                v[n++] = (leak){b->file, b->file ? NULL : b->alloc_ra, b->line, 1, b->size};
            }
        }
        pthread_mutex_unlock(&sh->lock);
    }
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

static void fork_prepare(void) {
    for (int i = 0; i < NSHARDS; i++)
        pthread_mutex_lock(&shards[i].lock);
}

static void fork_release(void) {
    for (int i = NSHARDS; i-- > 0;)
        pthread_mutex_unlock(&shards[i].lock);
}

static void leak_report_at_exit(void) {
    zmalloc_report_leaks(stderr);
}

__attribute__((constructor)) static void dbg_init(void) {
    pthread_atfork(fork_prepare, fork_release, fork_release);
    const char *env = getenv("ZMALLOC_LEAK_REPORT");
    if (env && *env && strcmp(env, "0") != 0) atexit(leak_report_at_exit);
}
