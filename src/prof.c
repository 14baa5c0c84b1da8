/* prof.c: the sampled heap profile and its gperftools-format dump.
 *
 * Two fixed-size, open-addressing hash tables, mapped on the first sample
 * and never resized, so recording needs neither malloc nor a lock:
 *   sites  one entry per distinct stack: the stack and four counters
 *          (allocations and bytes since start, live allocations and bytes),
 *          the counts in 1/256 units because each sample stands for a
 *          fractional number of allocations (its weight). A slot is claimed
 *          by a compare-and-swap of its key from 0 to "being written"; a
 *          prober that meets one being written moves on, so a stack may get
 *          two entries, which the dump's reader (pprof) merges by stack.
 *   live   one entry per live sampled block: address, the bytes and count it
 *          added to its site, the site. Claimed by CAS of the address from
 *          empty or tombstone; freeing writes a tombstone. Probes stop at
 *          ZM_PROF_PROBES slots, so a lookup of a block that is not there
 *          (a filter collision, sample.h) costs at most that many loads.
 * A full table drops the sample and counts the drop; the dump says so.
 *
 * The dump is gperftools' heap profile ("heap profile: ... @ heapprofile",
 * one "live: bytes [allocated: bytes] @ pcs" line per site, then
 * MAPPED_LIBRARIES: and /proc/self/maps), which Debian's google-pprof reads
 * as it is. Figures are already scaled ("heapprofile" tells pprof not to
 * rescale them), each sample by its own weight, which is exact per sample
 * where pprof's heap_v2 rescaling would use one mean size per site. It is
 * written with write(2) from a stack buffer: dumping allocates nothing, so
 * it works at exit and inside the preload library.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "platform.h"
#include "sample.h"
#include "zmalloc.h"

#define ZM_PROF_SITES (1u << 13)
#define ZM_PROF_LIVE (1u << 17)
#define ZM_PROF_PROBES 64
#define ZM_PROF_FX 256 /* fixed-point unit of counts */

#define KEY_EMPTY 0
#define KEY_WRITING 1
#define PTR_TOMB ((uintptr_t)1)

typedef struct prof_site {
    _Atomic uint64_t key; /* stack hash | 2; 0 empty; 1 being written */
    int depth;
    void *pc[ZM_SMP_DEPTH];
    _Atomic int64_t alloc_count, alloc_bytes, live_count, live_bytes;
} prof_site;

typedef struct prof_live {
    _Atomic uintptr_t ptr; /* 0 empty, 1 tombstone */
    uint32_t site;
    int64_t count, bytes;
} prof_live;

typedef struct prof_tables {
    prof_site sites[ZM_PROF_SITES];
    prof_live live[ZM_PROF_LIVE];
} prof_tables;

static _Atomic(prof_tables *) tables;
static _Atomic uint64_t dropped;
static char exit_file[4096];

static prof_tables *get_tables(void) {
    prof_tables *t = atomic_load_explicit(&tables, memory_order_acquire);
    if (t) return t;
    prof_tables *fresh = zm_os_map(sizeof(prof_tables));
    if (!fresh) return NULL;
    prof_tables *expected = NULL;
    if (!atomic_compare_exchange_strong(&tables, &expected, fresh)) {
        zm_os_unmap(fresh, sizeof(prof_tables));
        return expected;
    }
    return fresh;
}

static uint64_t hash_stack(const zm_smp_stack *s) {
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)s->depth;
    for (int i = 0; i < s->depth; i++) {
        h ^= (uint64_t)(uintptr_t)s->pc[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h | 2;
}

static prof_site *find_site(prof_tables *t, const zm_smp_stack *s, uint32_t *index) {
    uint64_t h = hash_stack(s);
    for (uint32_t i = 0; i < ZM_PROF_PROBES; i++) {
        uint32_t at = (uint32_t)(h + i) & (ZM_PROF_SITES - 1);
        prof_site *site = &t->sites[at];
        uint64_t key = atomic_load_explicit(&site->key, memory_order_acquire);
        if (key == KEY_EMPTY) {
            if (!atomic_compare_exchange_strong(&site->key, &key, KEY_WRITING)) {
                if (key != h) continue;
            } else {
                site->depth = s->depth;
                memcpy(site->pc, s->pc, sizeof(void *) * (size_t)s->depth);
                atomic_store_explicit(&site->key, h, memory_order_release);
                *index = at;
                return site;
            }
        }
        if (key == h && site->depth == s->depth &&
            memcmp(site->pc, s->pc, sizeof(void *) * (size_t)s->depth) == 0) {
            *index = at;
            return site;
        }
    }
    return NULL;
}

static inline uint32_t live_home(const void *p) {
    return (uint32_t)((((uintptr_t)p >> 4) * 0x9e3779b97f4a7c15ull) >> 40) & (ZM_PROF_LIVE - 1);
}

void zm_prof_record(void *p, size_t bytes, double weight, const zm_smp_stack *s) {
    prof_tables *t = get_tables();
    uint32_t site_index;
    prof_site *site = t ? find_site(t, s, &site_index) : NULL;
    if (!site) {
        atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
        return;
    }
    int64_t count = (int64_t)(weight * ZM_PROF_FX + 0.5);
    int64_t est = (int64_t)((double)bytes * weight + 0.5);
    atomic_fetch_add_explicit(&site->alloc_count, count, memory_order_relaxed);
    atomic_fetch_add_explicit(&site->alloc_bytes, est, memory_order_relaxed);
    uint32_t home = live_home(p);
    for (uint32_t i = 0; i < ZM_PROF_PROBES; i++) {
        prof_live *e = &t->live[(home + i) & (ZM_PROF_LIVE - 1)];
        uintptr_t cur = atomic_load_explicit(&e->ptr, memory_order_relaxed);
        if (cur > PTR_TOMB) continue;
        if (!atomic_compare_exchange_strong(&e->ptr, &cur, (uintptr_t)p)) continue;
        e->site = site_index;
        e->count = count;
        e->bytes = est;
        atomic_fetch_add_explicit(&site->live_count, count, memory_order_relaxed);
        atomic_fetch_add_explicit(&site->live_bytes, est, memory_order_relaxed);
        zm_smp_filter_add(p);
        return;
    }
    atomic_fetch_add_explicit(&dropped, 1, memory_order_relaxed);
}

int zm_prof_forget(const void *p) {
    prof_tables *t = atomic_load_explicit(&tables, memory_order_acquire);
    if (!t) return 0;
    uint32_t home = live_home(p);
    for (uint32_t i = 0; i < ZM_PROF_PROBES; i++) {
        prof_live *e = &t->live[(home + i) & (ZM_PROF_LIVE - 1)];
        uintptr_t cur = atomic_load_explicit(&e->ptr, memory_order_acquire);
        if (cur == 0) return 0;
        if (cur != (uintptr_t)p) continue;
        prof_site *site = &t->sites[e->site];
        atomic_fetch_sub_explicit(&site->live_count, e->count, memory_order_relaxed);
        atomic_fetch_sub_explicit(&site->live_bytes, e->bytes, memory_order_relaxed);
        atomic_store_explicit(&e->ptr, PTR_TOMB, memory_order_release);
        zm_smp_filter_remove(p);
        return 1;
    }
    return 0;
}

/* ---------------------------------------------------------------------
 * The dump
 * --------------------------------------------------------------------- */

typedef struct out_buf {
    int fd, failed;
    size_t len;
    char buf[4096];
} out_buf;

static void out_flush(out_buf *o) {
    size_t done = 0;
    while (done < o->len && !o->failed) {
        ssize_t n = write(o->fd, o->buf + done, o->len - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) o->failed = 1;
        else done += (size_t)n;
    }
    o->len = 0;
}

static void out_bytes(out_buf *o, const char *s, size_t n) {
    while (n) {
        if (o->len == sizeof o->buf) out_flush(o);
        size_t room = sizeof o->buf - o->len, k = n < room ? n : room;
        memcpy(o->buf + o->len, s, k);
        o->len += k;
        s += k;
        n -= k;
    }
}

/* snprintf into a stack buffer: with integer conversions only, glibc's
 * snprintf does not allocate. */
#define OUT(o, ...)                                                       \
    do {                                                                  \
        char line_[256];                                                  \
        int n_ = snprintf(line_, sizeof line_, __VA_ARGS__);              \
        if (n_ > 0) out_bytes((o), line_, (size_t)n_ < sizeof line_ ? (size_t)n_ : sizeof line_ - 1); \
    } while (0)

static long long fx_count(int64_t fx) {
    return fx <= 0 ? 0 : (long long)((fx + ZM_PROF_FX / 2) / ZM_PROF_FX);
}

static long long nonneg(int64_t v) {
    return v < 0 ? 0 : (long long)v;
}

/* "%p" in path becomes the process id. */
static int expand_path(const char *path, char *out, size_t cap) {
    size_t o = 0;
    for (const char *c = path; *c; c++) {
        if (c[0] == '%' && c[1] == 'p') {
            char num[24];
            int n = snprintf(num, sizeof num, "%ld", (long)getpid());
            if (o + (size_t)n >= cap) return -1;
            memcpy(out + o, num, (size_t)n);
            o += (size_t)n;
            c++;
        } else {
            if (o + 1 >= cap) return -1;
            out[o++] = *c;
        }
    }
    out[o] = '\0';
    return 0;
}

int zmalloc_prof_dump(const char *path) {
    char file[4096];
    if (!path || !*path) path = exit_file;
    if (!*path || expand_path(path, file, sizeof file) != 0) {
        errno = EINVAL;
        return -1;
    }
    int saved = errno;
    int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    out_buf o = {.fd = fd};
    prof_tables *t = atomic_load_explicit(&tables, memory_order_acquire);
    int64_t tot[4] = {0, 0, 0, 0};
    for (uint32_t i = 0; t && i < ZM_PROF_SITES; i++) {
        prof_site *s = &t->sites[i];
        if (atomic_load_explicit(&s->key, memory_order_acquire) <= KEY_WRITING) continue;
        tot[0] += atomic_load_explicit(&s->live_count, memory_order_relaxed);
        tot[1] += atomic_load_explicit(&s->live_bytes, memory_order_relaxed);
        tot[2] += atomic_load_explicit(&s->alloc_count, memory_order_relaxed);
        tot[3] += atomic_load_explicit(&s->alloc_bytes, memory_order_relaxed);
    }
    OUT(&o, "heap profile: %6lld: %8lld [%6lld: %8lld] @ heapprofile\n", fx_count(tot[0]),
        nonneg(tot[1]), fx_count(tot[2]), nonneg(tot[3]));
    for (uint32_t i = 0; t && i < ZM_PROF_SITES; i++) {
        prof_site *s = &t->sites[i];
        if (atomic_load_explicit(&s->key, memory_order_acquire) <= KEY_WRITING) continue;
        int64_t ac = atomic_load_explicit(&s->alloc_count, memory_order_relaxed);
        if (ac <= 0) continue;
        OUT(&o, "%6lld: %8lld [%6lld: %8lld] @",
            fx_count(atomic_load_explicit(&s->live_count, memory_order_relaxed)),
            nonneg(atomic_load_explicit(&s->live_bytes, memory_order_relaxed)), fx_count(ac),
            nonneg(atomic_load_explicit(&s->alloc_bytes, memory_order_relaxed)));
        for (int k = 0; k < s->depth; k++) {
            /* pprof takes the first address as is and the others as return
             * addresses: all of ours are return addresses, so the first is
             * moved back into its call instruction. */
            uintptr_t pc = (uintptr_t)s->pc[k] - (k == 0);
            OUT(&o, " 0x%lx", (unsigned long)pc);
        }
        out_bytes(&o, "\n", 1);
    }
    out_bytes(&o, "\nMAPPED_LIBRARIES:\n", 19);
    int maps = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (maps >= 0) {
        char buf[4096];
        ssize_t n;
        while ((n = read(maps, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
            if (n > 0) out_bytes(&o, buf, (size_t)n);
        close(maps);
    }
    out_flush(&o);
    int failed = o.failed;
    if (close(fd) != 0) failed = 1;
    if (failed) return -1;
    errno = saved;
    return 0;
}

size_t zmalloc_prof_dropped(void) {
    return (size_t)atomic_load(&dropped);
}

void zm_prof_set_file(const char *path) {
    size_t len = path ? strlen(path) : 0;
    if (len >= sizeof exit_file) return;
    memcpy(exit_file, path ? path : "", len + 1);
}

/* ZMALLOC_PROF_FILE: the profile at exit (of every process image that
 * exits normally; use %p so that fork children do not overwrite it). */
__attribute__((destructor(102))) static void prof_at_exit(void) {
    if (!exit_file[0]) return;
    if (!atomic_load(&tables) && zm_smp_prof_interval() == 0) return;
    int saved = errno;
    zmalloc_prof_dump(exit_file);
    errno = saved;
}
