/* preload.c: malloc and friends for LD_PRELOAD (libzmalloc-preload.so).
 *
 * The library replaces glibc's allocator in any dynamically linked program:
 *   LD_PRELOAD=/usr/local/lib/libzmalloc-preload.so program args...
 * It is built from the pool build's sources (cmake/preload.cmake) and calls
 * the lower layer directly (layer.h: the pool backend, or the verification
 * layer over it in a ZMALLOC_DEBUG build), not the Redis front end: a
 * program's malloc needs none of zmalloc's limits, handlers or accounting,
 * and this way the fast path is the pool's own plus one predictable test.
 * Nothing here calls libc's malloc, and the pool needs no initialisation,
 * so calls that arrive while the dynamic loader is still relocating (before
 * any constructor ran), from dlsym's error buffers, from threads created by
 * any library and in fork children all work.
 *
 * Semantics are glibc's: errno = ENOMEM on failure; malloc(0) returns a
 * unique block; calloc overflow -> NULL, ENOMEM; realloc(p, 0) frees p and
 * returns NULL; free(NULL) does nothing; posix_memalign returns EINVAL for an
 * alignment that is not a power of two multiple of sizeof(void *) and ENOMEM
 * on failure, leaving *memptr alone; memalign rounds a non-power-of-two
 * alignment up, as glibc does; aligned_alloc rejects one with EINVAL (glibc
 * 2.38 and C17 DR 460); valloc/pvalloc align to the page, pvalloc rounds the
 * size up to whole pages. malloc_usable_size, malloc_trim (purges at once),
 * mallinfo/mallinfo2 (from the pool's own counters), mallopt (accepted and
 * ignored), malloc_stats and malloc_info are provided, as are glibc's
 * __libc_* aliases. C++ new/delete reach these through malloc/free.
 *
 * Options: one scheme, ZMALLOC_* environment variables, read once when the
 * first allocation happens, from /proc/self/environ (libc's environment is
 * not set up yet at that point) and again from the constructor's envp when
 * /proc is unreadable:
 *   ZMALLOC_STATS=1          count allocations; at exit print a report on
 *                            stderr (ZMALLOC_STATS=json: one JSON line).
 *   ZMALLOC_STATS_FILE=path  count allocations; at exit append one JSON line
 *                            per process to path (what zmrun uses). Each
 *                            process image writes its own line: a fork
 *                            child reports what it did after the fork, an
 *                            exec'd program starts from zero; an image that
 *                            ends by _exit, exec or a signal writes nothing.
 *   Verification builds (ZMALLOC_DEBUG=1) read their own ZMALLOC_* options
 *   (e.g. ZMALLOC_LEAK_REPORT=1), see include/zmalloc.h.
 * Without them the statistics cost one load and one well-predicted branch
 * per call. With them: per-thread counters (counts, a histogram by
 * power-of-two size class, bytes in use) written by their owner alone; bytes
 * in use are folded into a process-wide total every ZPL_FLUSH bytes, which is
 * where the peak is taken, so the reported peak is below the true peak by at
 * most ZPL_FLUSH bytes per thread.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "layer.h"
#include "platform.h"

#define ZPL_EXPORT __attribute__((visibility("default")))
#define zpl_likely(x) __builtin_expect(!!(x), 1)
#define zpl_unlikely(x) __builtin_expect(!!(x), 0)
/* As the front end: requests this large fail without asking the backend. */
#define ZPL_TOO_BIG(n) ((n) >= SIZE_MAX / 2)
#define ZPL_MIN_ALIGN alignof(max_align_t)

/* ---------------------------------------------------------------------
 * Options and the mode word every call tests
 * --------------------------------------------------------------------- */

enum { ZPL_UNINIT = 0, ZPL_PLAIN = 1, ZPL_STATS = 2 };
enum { ZPL_OUT_TEXT = 0, ZPL_OUT_JSON = 1 };

static _Atomic int zpl_mode;
static int zpl_out_format;
static char zpl_stats_file[4096];

/* ---------------------------------------------------------------------
 * Statistics (only when ZMALLOC_STATS or ZMALLOC_STATS_FILE is set)
 * --------------------------------------------------------------------- */

/* Buckets by usable size: <=16, <=32, ..., <=1 MiB, then everything larger. */
#define ZPL_NBUCKETS 18
#define ZPL_FLUSH ((int64_t)64 * 1024)

typedef struct zpl_counts {
    _Atomic uint64_t allocs;   /* malloc, calloc, aligned, realloc(NULL, n) */
    _Atomic uint64_t reallocs; /* realloc of a live block to a new size      */
    _Atomic uint64_t frees;    /* free, realloc(p, 0)                         */
    _Atomic uint64_t hist[ZPL_NBUCKETS]; /* allocations and realloc results */
} zpl_counts;

enum { ZPL_T_NEW = 0, ZPL_T_LIVE = 1, ZPL_T_EXITED = 2 };

typedef struct zpl_thread {
    zpl_counts c;
    _Atomic int64_t pending; /* bytes in use not yet folded into zpl_used */
    int state;
    struct zpl_thread *prev, *next;
} zpl_thread;

static __thread zpl_thread zpl_self __attribute__((tls_model("initial-exec")));

static pthread_mutex_t zpl_lock = PTHREAD_MUTEX_INITIALIZER;
static zpl_thread zpl_threads = {.prev = &zpl_threads, .next = &zpl_threads};
static zpl_counts zpl_exited;     /* folded from exited threads */
static zpl_counts zpl_base;       /* totals at the last fork (child only) */
static _Atomic int64_t zpl_used;  /* bytes in use, folded */
static _Atomic int64_t zpl_peak;  /* largest zpl_used seen */
static int zpl_forked;
static pthread_key_t zpl_key;
static pthread_once_t zpl_once = PTHREAD_ONCE_INIT;

static inline void zpl_bump(_Atomic uint64_t *c, uint64_t d) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static inline unsigned zpl_bucket(size_t usable) {
    if (usable <= 16) return 0;
    unsigned b = 64u - (unsigned)__builtin_clzll((unsigned long long)usable - 1) - 4u;
    return b < ZPL_NBUCKETS ? b : ZPL_NBUCKETS - 1;
}

static void zpl_raise_peak(int64_t now) {
    int64_t peak = atomic_load_explicit(&zpl_peak, memory_order_relaxed);
    while (now > peak && !atomic_compare_exchange_weak_explicit(&zpl_peak, &peak, now,
                                                                memory_order_relaxed,
                                                                memory_order_relaxed)) {
    }
}

static void zpl_flush(zpl_thread *t) {
    int64_t d = atomic_load_explicit(&t->pending, memory_order_relaxed);
    atomic_store_explicit(&t->pending, 0, memory_order_relaxed);
    zpl_raise_peak(atomic_fetch_add_explicit(&zpl_used, d, memory_order_relaxed) + d);
}

static void zpl_add_counts(zpl_counts *to, zpl_counts *from) {
    atomic_fetch_add(&to->allocs, atomic_load_explicit(&from->allocs, memory_order_relaxed));
    atomic_fetch_add(&to->reallocs, atomic_load_explicit(&from->reallocs, memory_order_relaxed));
    atomic_fetch_add(&to->frees, atomic_load_explicit(&from->frees, memory_order_relaxed));
    for (int i = 0; i < ZPL_NBUCKETS; i++)
        atomic_fetch_add(&to->hist[i], atomic_load_explicit(&from->hist[i], memory_order_relaxed));
}

/* Thread exit (pthread key destructor): fold into the process totals. Later
 * calls from this thread (other destructors) count in zpl_exited directly. */
static void zpl_thread_exit(void *arg) {
    zpl_thread *t = arg;
    pthread_mutex_lock(&zpl_lock);
    zpl_add_counts(&zpl_exited, &t->c);
    zpl_flush(t);
    t->prev->next = t->next;
    t->next->prev = t->prev;
    t->state = ZPL_T_EXITED;
    pthread_mutex_unlock(&zpl_lock);
}

static void zpl_fork_prepare(void) {
    pthread_mutex_lock(&zpl_lock);
}
static void zpl_fork_parent(void) {
    pthread_mutex_unlock(&zpl_lock);
}
/* The child has one thread: fold every other thread's counters (their
 * memory is still in our copy of the address space), then take the totals
 * as the base the child's report is relative to. */
static void zpl_fork_child(void) {
    pthread_mutex_init(&zpl_lock, NULL);
    zpl_thread *self = &zpl_self;
    for (zpl_thread *t = zpl_threads.next, *next; t != &zpl_threads; t = next) {
        next = t->next;
        if (t == self) continue;
        zpl_add_counts(&zpl_exited, &t->c);
        zpl_flush(t);
        t->prev->next = t->next;
        t->next->prev = t->prev;
    }
    memset(&zpl_base, 0, sizeof zpl_base);
    zpl_add_counts(&zpl_base, &zpl_exited);
    if (self->state == ZPL_T_LIVE) {
        zpl_add_counts(&zpl_base, &self->c);
        zpl_flush(self);
    }
    atomic_store(&zpl_peak, atomic_load(&zpl_used));
    zpl_forked = 1;
}

static void zpl_stats_setup(void) {
    pthread_key_create(&zpl_key, zpl_thread_exit);
    pthread_atfork(zpl_fork_prepare, zpl_fork_parent, zpl_fork_child);
}

static zpl_thread *zpl_register(void) {
    zpl_thread *t = &zpl_self;
    pthread_once(&zpl_once, zpl_stats_setup);
    pthread_mutex_lock(&zpl_lock);
    t->next = zpl_threads.next;
    t->prev = &zpl_threads;
    zpl_threads.next->prev = t;
    zpl_threads.next = t;
    t->state = ZPL_T_LIVE;
    pthread_mutex_unlock(&zpl_lock);
    pthread_setspecific(zpl_key, t);
    return t;
}

static void zpl_init(void);

/* One counted event of `kind`: 'a' an allocation of a block of `usable`
 * bytes, 'r' a realloc whose result has `usable` bytes, 'f' a free; delta
 * is the change in bytes in use. Also where the options are read on the
 * first call (zpl_mode is UNINIT until then, so every call comes here). */
static __attribute__((noinline, cold)) void zpl_count(size_t usable, int kind, int64_t delta) {
    if (atomic_load_explicit(&zpl_mode, memory_order_relaxed) == ZPL_UNINIT) zpl_init();
    if (atomic_load_explicit(&zpl_mode, memory_order_relaxed) != ZPL_STATS) return;
    zpl_thread *t = &zpl_self;
    if (zpl_unlikely(t->state != ZPL_T_LIVE)) {
        if (t->state == ZPL_T_NEW) {
            t = zpl_register();
        } else {
            /* Exiting thread: straight into the process totals. */
            t = NULL;
        }
    }
    zpl_counts *c = t ? &t->c : &zpl_exited;
    switch (kind) {
    case 'a':
        zpl_bump(&c->allocs, 1);
        zpl_bump(&c->hist[zpl_bucket(usable)], 1);
        break;
    case 'r':
        zpl_bump(&c->reallocs, 1);
        zpl_bump(&c->hist[zpl_bucket(usable)], 1);
        break;
    default: zpl_bump(&c->frees, 1); break;
    }
    if (!t) {
        zpl_raise_peak(atomic_fetch_add(&zpl_used, delta) + delta);
        return;
    }
    int64_t p = atomic_load_explicit(&t->pending, memory_order_relaxed) + delta;
    atomic_store_explicit(&t->pending, p, memory_order_relaxed);
    if (p > ZPL_FLUSH || p < -ZPL_FLUSH) zpl_flush(t);
}

/* The test on every call: anything but "plain, no statistics". */
#define ZPL_COUNTING() \
    zpl_unlikely(atomic_load_explicit(&zpl_mode, memory_order_relaxed) != ZPL_PLAIN)

/* ---------------------------------------------------------------------
 * Reading options
 * --------------------------------------------------------------------- */

static void zpl_option(const char *entry) {
    if (strncmp(entry, "ZMALLOC_STATS=", 14) == 0) {
        const char *v = entry + 14;
        if (strcmp(v, "json") == 0) {
            zpl_out_format = ZPL_OUT_JSON;
            atomic_store(&zpl_mode, ZPL_STATS);
        } else if (*v && strcmp(v, "0") != 0) {
            atomic_store(&zpl_mode, ZPL_STATS);
        }
    } else if (strncmp(entry, "ZMALLOC_STATS_FILE=", 19) == 0 && entry[19]) {
        size_t len = strlen(entry + 19);
        if (len < sizeof zpl_stats_file) {
            memcpy(zpl_stats_file, entry + 19, len + 1);
            zpl_out_format = ZPL_OUT_JSON;
            atomic_store(&zpl_mode, ZPL_STATS);
        }
    }
}

/* /proc/self/environ holds the environment the process started with, and
 * can be read with system calls alone: usable from the first malloc. */
static int zpl_read_proc_environ(void) {
    int fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[4096], entry[4200];
    size_t len = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
        for (ssize_t i = 0; i < n; i++) {
            if (buf[i] == '\0') {
                entry[len < sizeof entry ? len : sizeof entry - 1] = '\0';
                if (len < sizeof entry) zpl_option(entry);
                len = 0;
            } else {
                if (len < sizeof entry) entry[len] = buf[i];
                len++;
            }
        }
    }
    close(fd);
    return 1;
}

static _Atomic int zpl_environ_read;

static void zpl_init(void) {
    int saved = errno;
    if (!atomic_exchange(&zpl_environ_read, 1)) zpl_read_proc_environ();
    int expected = ZPL_UNINIT;
    atomic_compare_exchange_strong(&zpl_mode, &expected, ZPL_PLAIN);
    errno = saved;
}

/* glibc passes (argc, argv, envp) to constructors: the fallback when /proc
 * is not mounted, and the place where a program with no allocation before
 * main gets its options. */
__attribute__((constructor(101))) static void zpl_constructor(int argc, char **argv,
                                                              char **envp) {
    (void)argc;
    (void)argv;
    if (atomic_load(&zpl_mode) != ZPL_UNINIT) return;
    if (!atomic_exchange(&zpl_environ_read, 1) && !zpl_read_proc_environ() && envp) {
        for (char **e = envp; *e; e++) zpl_option(*e);
    }
    int expected = ZPL_UNINIT;
    atomic_compare_exchange_strong(&zpl_mode, &expected, ZPL_PLAIN);
}

/* ---------------------------------------------------------------------
 * The replaced functions
 * --------------------------------------------------------------------- */

static inline size_t zpl_size_of(void *p) {
    return zm_lower_usable_size(p);
}

static __attribute__((noinline, cold)) void *zpl_enomem(void) {
    errno = ENOMEM;
    return NULL;
}

/* The work of each function, without ZM_NOTE_CALLER: the exported entry
 * points note their caller (the allocation site of a verification build)
 * once and then call these, so a realloc(NULL, n) or an aligned request is
 * charged to the program, not to this file. */
static inline void *zpl_malloc(size_t size) {
    size_t usable;
    if (zpl_unlikely(ZPL_TOO_BIG(size))) return zpl_enomem();
    void *p = zm_lower_malloc(size ? size : 1, &usable);
    if (zpl_unlikely(!p)) return zpl_enomem();
    if (ZPL_COUNTING()) zpl_count(usable, 'a', (int64_t)usable);
    return p;
}

static inline void zpl_free(void *ptr) {
    if (zpl_unlikely(!ptr)) return;
#if ZMALLOC_DEBUG_BUILD
    /* The verification layer checks the size it is given. */
    size_t usable = zpl_size_of(ptr);
    if (ZPL_COUNTING()) zpl_count(usable, 'f', -(int64_t)usable);
    zm_lower_free(ptr, usable);
#else
    /* The pool's free needs no size (backend_pool.c): look it up only when
     * counting. */
    if (ZPL_COUNTING()) {
        size_t usable = zpl_size_of(ptr);
        zpl_count(usable, 'f', -(int64_t)usable);
    }
    zm_lower_free(ptr, 0);
#endif
}

static inline void *zpl_realloc(void *ptr, size_t size) {
    if (!ptr) return zpl_malloc(size);
    if (size == 0) {
        /* glibc (REALLOC_ZERO_BYTES_FREES): free and return NULL. */
        zpl_free(ptr);
        return NULL;
    }
    if (zpl_unlikely(ZPL_TOO_BIG(size))) return zpl_enomem();
    size_t usable, old = 0;
    int counting = ZPL_COUNTING();
    if (counting) old = zpl_size_of(ptr);
    void *p = zm_lower_realloc(ptr, size, &usable);
    if (zpl_unlikely(!p)) return zpl_enomem();
    if (counting) zpl_count(usable, 'r', (int64_t)usable - (int64_t)old);
    return p;
}

/* alignment: a power of two. */
static void *zpl_aligned(size_t alignment, size_t size) {
    if (alignment <= ZPL_MIN_ALIGN) return zpl_malloc(size);
    if (zpl_unlikely(ZPL_TOO_BIG(size))) return zpl_enomem();
    size_t usable;
    void *p = zm_lower_aligned_alloc(alignment, size ? size : 1, &usable);
    if (zpl_unlikely(!p)) return zpl_enomem();
    if (ZPL_COUNTING()) zpl_count(usable, 'a', (int64_t)usable);
    return p;
}

ZPL_EXPORT void *malloc(size_t size) {
    ZM_NOTE_CALLER();
    return zpl_malloc(size);
}

ZPL_EXPORT void free(void *ptr) {
    ZM_NOTE_CALLER();
    zpl_free(ptr);
}

ZPL_EXPORT void *calloc(size_t nmemb, size_t size) {
    ZM_NOTE_CALLER();
    size_t bytes, usable;
    if (zpl_unlikely(__builtin_mul_overflow(nmemb, size, &bytes) || ZPL_TOO_BIG(bytes)))
        return zpl_enomem();
    void *p = zm_lower_calloc(bytes ? bytes : 1, &usable);
    if (zpl_unlikely(!p)) return zpl_enomem();
    if (ZPL_COUNTING()) zpl_count(usable, 'a', (int64_t)usable);
    return p;
}

ZPL_EXPORT void *realloc(void *ptr, size_t size) {
    ZM_NOTE_CALLER();
    return zpl_realloc(ptr, size);
}

ZPL_EXPORT void *reallocarray(void *ptr, size_t nmemb, size_t size) {
    ZM_NOTE_CALLER();
    size_t bytes;
    if (__builtin_mul_overflow(nmemb, size, &bytes)) return zpl_enomem();
    return zpl_realloc(ptr, bytes);
}

static inline int zpl_pow2(size_t x) {
    return x && (x & (x - 1)) == 0;
}

ZPL_EXPORT int posix_memalign(void **memptr, size_t alignment, size_t size) {
    ZM_NOTE_CALLER();
    if (alignment % sizeof(void *) != 0 || !zpl_pow2(alignment)) return EINVAL;
    int saved = errno;
    void *p = zpl_aligned(alignment, size);
    if (!p) {
        errno = saved;
        return ENOMEM;
    }
    *memptr = p;
    return 0;
}

ZPL_EXPORT void *aligned_alloc(size_t alignment, size_t size) {
    ZM_NOTE_CALLER();
    if (!zpl_pow2(alignment)) {
        errno = EINVAL;
        return NULL;
    }
    return zpl_aligned(alignment, size);
}

ZPL_EXPORT void *memalign(size_t alignment, size_t size) {
    ZM_NOTE_CALLER();
    /* glibc: more than half the address space is EINVAL, anything else not
     * a power of two is rounded up to one. */
    if (alignment > SIZE_MAX / 2 + 1) {
        errno = EINVAL;
        return NULL;
    }
    if (!zpl_pow2(alignment)) {
        size_t a = ZPL_MIN_ALIGN;
        while (a < alignment) a <<= 1;
        alignment = a;
    }
    return zpl_aligned(alignment, size);
}

ZPL_EXPORT void *valloc(size_t size) {
    ZM_NOTE_CALLER();
    return zpl_aligned(zm_os_page_size(), size);
}

ZPL_EXPORT void *pvalloc(size_t size) {
    ZM_NOTE_CALLER();
    size_t page = zm_os_page_size();
    if (size > SIZE_MAX - page) return zpl_enomem();
    size_t rounded = (size + page - 1) & ~(page - 1);
    return zpl_aligned(page, rounded ? rounded : page);
}

ZPL_EXPORT size_t malloc_usable_size(void *ptr) {
    return ptr ? zpl_size_of(ptr) : 0;
}

ZPL_EXPORT int malloc_trim(size_t pad) {
    (void)pad;
    return zm_be_purge() == 0;
}

ZPL_EXPORT struct mallinfo2 mallinfo2(void) {
    zm_be_stats st = {0};
    zm_be_get_stats(0, &st);
    struct mallinfo2 mi = {0};
    /* The glibc fields that mean something for a pool: arena = bytes in
     * pages in use, uordblks = bytes in live blocks, fordblks = free bytes
     * inside those pages, keepcost = bytes releasable now (dirty pages). */
    mi.arena = st.active;
    mi.ordblks = 1;
    mi.uordblks = st.allocated;
    mi.fordblks = st.active > st.allocated ? st.active - st.allocated : 0;
    mi.keepcost = st.resident > st.active ? st.resident - st.active : 0;
    return mi;
}

ZPL_EXPORT struct mallinfo mallinfo(void) {
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi = {0};
    mi.arena = (int)m2.arena;
    mi.ordblks = (int)m2.ordblks;
    mi.uordblks = (int)m2.uordblks;
    mi.fordblks = (int)m2.fordblks;
    mi.keepcost = (int)m2.keepcost;
    return mi;
}

ZPL_EXPORT int mallopt(int param, int value) {
    (void)param;
    (void)value;
    return 1;
}

ZPL_EXPORT void malloc_stats(void) {
    zm_be_print_stats(stderr, 0);
}

ZPL_EXPORT int malloc_info(int options, FILE *fp) {
    if (options != 0) {
        errno = EINVAL;
        return -1;
    }
    zm_be_stats st = {0};
    zm_be_get_stats(0, &st);
    fprintf(fp,
            "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n</sizes>\n"
            "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
            "<total type=\"rest\" count=\"0\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n"
            "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n"
            "</heap>\n</malloc>\n",
            st.active - (st.allocated < st.active ? st.allocated : st.active), st.resident,
            st.resident, st.resident + st.retained, st.resident + st.retained);
    return 0;
}

/* glibc's internal names, which a few programs call directly. */
/* The aliases need not repeat the header's attributes of their targets. */
#pragma GCC diagnostic ignored "-Wmissing-attributes"
#define ZPL_ALIAS(f) __attribute__((alias(#f)))
ZPL_EXPORT void *__libc_malloc(size_t) __attribute__((alias("malloc")));
ZPL_EXPORT void __libc_free(void *) ZPL_ALIAS(free);
ZPL_EXPORT void *__libc_calloc(size_t, size_t) __attribute__((alias("calloc")));
ZPL_EXPORT void *__libc_realloc(void *, size_t) __attribute__((alias("realloc")));
ZPL_EXPORT void *__libc_memalign(size_t, size_t) __attribute__((alias("memalign")));
ZPL_EXPORT void *__libc_valloc(size_t) __attribute__((alias("valloc")));
ZPL_EXPORT void *__libc_pvalloc(size_t) __attribute__((alias("pvalloc")));
ZPL_EXPORT int __posix_memalign(void **, size_t, size_t) ZPL_ALIAS(posix_memalign);

/* ---------------------------------------------------------------------
 * The exit report
 * --------------------------------------------------------------------- */

typedef struct zpl_totals {
    uint64_t allocs, reallocs, frees, hist[ZPL_NBUCKETS];
    int64_t used, peak;
} zpl_totals;

static void zpl_sum_into(zpl_totals *tot, zpl_counts *c, int sign) {
    tot->allocs += sign * atomic_load_explicit(&c->allocs, memory_order_relaxed);
    tot->reallocs += sign * atomic_load_explicit(&c->reallocs, memory_order_relaxed);
    tot->frees += sign * atomic_load_explicit(&c->frees, memory_order_relaxed);
    for (int i = 0; i < ZPL_NBUCKETS; i++)
        tot->hist[i] += sign * atomic_load_explicit(&c->hist[i], memory_order_relaxed);
}

static void zpl_collect(zpl_totals *tot) {
    memset(tot, 0, sizeof *tot);
    pthread_mutex_lock(&zpl_lock);
    zpl_sum_into(tot, &zpl_exited, 1);
    int64_t used = atomic_load(&zpl_used);
    for (zpl_thread *t = zpl_threads.next; t != &zpl_threads; t = t->next) {
        zpl_sum_into(tot, &t->c, 1);
        used += atomic_load_explicit(&t->pending, memory_order_relaxed);
    }
    pthread_mutex_unlock(&zpl_lock);
    if (zpl_forked) zpl_sum_into(tot, &zpl_base, -1);
    int64_t peak = atomic_load(&zpl_peak);
    tot->used = used;
    tot->peak = used > peak ? used : peak;
}

/* "VmHWM:" and "VmRSS:" of /proc/self/status, in bytes. */
static void zpl_proc_rss(size_t *hwm, size_t *rss) {
    char buf[4096];
    *hwm = *rss = 0;
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return;
    buf[n] = '\0';
    char *p = strstr(buf, "VmHWM:");
    if (p) *hwm = (size_t)strtoull(p + 6, NULL, 10) * 1024;
    p = strstr(buf, "VmRSS:");
    if (p) *rss = (size_t)strtoull(p + 6, NULL, 10) * 1024;
}

/* Append s (len bytes) to a JSON string, escaped, within cap. */
static size_t zpl_json_str(char *out, size_t cap, const char *s, size_t len) {
    size_t o = 0;
    for (size_t i = 0; i < len && o + 8 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = '\0';
    return o;
}

/* The command line, NUL-separated arguments joined by spaces. */
static void zpl_cmdline(char *out, size_t cap) {
    char raw[1024];
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, raw, sizeof raw - 1) : -1;
    if (fd >= 0) close(fd);
    if (n <= 0) n = 0;
    for (ssize_t i = 0; i < n; i++)
        if (raw[i] == '\0') raw[i] = ' ';
    while (n > 0 && raw[n - 1] == ' ') n--;
    zpl_json_str(out, cap, raw, (size_t)n);
}

static void zpl_write_all(int fd, const char *buf, size_t len) {
    while (len) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        buf += n;
        len -= (size_t)n;
    }
}

__attribute__((destructor(101))) static void zpl_report(void) {
    if (atomic_load(&zpl_mode) != ZPL_STATS) return;
    int saved = errno;
    zpl_totals t;
    zpl_collect(&t);
    size_t hwm, rss;
    zpl_proc_rss(&hwm, &rss);
    zm_be_stats st = {0};
    zm_be_get_stats(0, &st);
    char cmd[1200], exe[1024], exe_json[1200];
    zpl_cmdline(cmd, sizeof cmd);
    ssize_t el = readlink("/proc/self/exe", exe, sizeof exe - 1);
    zpl_json_str(exe_json, sizeof exe_json, exe, el > 0 ? (size_t)el : 0);

    char buf[8192];
    size_t o = 0;
#define ZPL_PUT(...) \
    o += (size_t)snprintf(buf + o, o < sizeof buf ? sizeof buf - o : 0, __VA_ARGS__)
    if (zpl_out_format == ZPL_OUT_JSON) {
        ZPL_PUT("{\"zmalloc_preload\":1,\"backend\":\"%s\",\"pid\":%ld,\"ppid\":%ld,"
                "\"forked\":%d,\"exe\":\"%s\",\"cmd\":\"%s\",",
                ZMALLOC_BACKEND_VERSION, (long)getpid(), (long)getppid(), zpl_forked, exe_json,
                cmd);
        ZPL_PUT("\"allocs\":%llu,\"reallocs\":%llu,\"frees\":%llu,\"used_at_exit\":%lld,"
                "\"peak_used\":%lld,\"rss_at_exit\":%zu,\"peak_rss\":%zu,",
                (unsigned long long)t.allocs, (unsigned long long)t.reallocs,
                (unsigned long long)t.frees, (long long)t.used, (long long)t.peak, rss, hwm);
        ZPL_PUT("\"allocator\":{\"allocated\":%zu,\"active\":%zu,\"resident\":%zu,"
                "\"retained\":%zu,\"muzzy\":%zu,\"frag_smallbins\":%zu},\"hist\":[",
                st.allocated, st.active, st.resident, st.retained, st.muzzy,
                st.frag_smallbins);
        for (int i = 0; i < ZPL_NBUCKETS; i++)
            ZPL_PUT("%s[%llu,%llu]", i ? "," : "",
                    i < ZPL_NBUCKETS - 1 ? (unsigned long long)16 << i : 0ULL,
                    (unsigned long long)t.hist[i]);
        ZPL_PUT("]}\n");
    } else {
        ZPL_PUT("zmalloc preload report, pid %ld (%s)\n", (long)getpid(), cmd);
        ZPL_PUT("  allocations %llu, reallocations %llu, frees %llu\n",
                (unsigned long long)t.allocs, (unsigned long long)t.reallocs,
                (unsigned long long)t.frees);
        ZPL_PUT("  peak used %lld bytes, used at exit %lld bytes\n", (long long)t.peak,
                (long long)t.used);
        ZPL_PUT("  peak RSS %zu bytes, RSS at exit %zu bytes", hwm, rss);
        if (t.used > 0) ZPL_PUT(", RSS/used %.2f", (double)rss / (double)t.used);
        ZPL_PUT("\n  allocations by size:\n");
        for (int i = 0; i < ZPL_NBUCKETS; i++) {
            if (!t.hist[i]) continue;
            if (i < ZPL_NBUCKETS - 1)
                ZPL_PUT("    <= %8llu  %llu\n", (unsigned long long)16 << i,
                        (unsigned long long)t.hist[i]);
            else
                ZPL_PUT("     > %8llu  %llu\n", (unsigned long long)8 << i,
                        (unsigned long long)t.hist[i]);
        }
    }
#undef ZPL_PUT
    if (o >= sizeof buf) o = sizeof buf - 1;
    if (zpl_stats_file[0]) {
        int fd = open(zpl_stats_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) {
            /* One write per record: O_APPEND keeps records of concurrent
             * processes whole. */
            zpl_write_all(fd, buf, o);
            close(fd);
        }
    } else {
        zpl_write_all(2, buf, o);
    }
    errno = saved;
}
