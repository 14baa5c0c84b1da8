/* preload.h: the two halves of the preload library (libzmalloc-preload.so).
 *
 * preload.c is the malloc API; preload_stats.c holds the options, the
 * optional statistics and the exit report. Between them: the mode word
 * that every call tests once, and the one out-of-line counting call.
 *
 * The statistics' per-thread counters live in the process's one thread
 * registry (account.h): bytes in use in the slot's `used`, the event
 * counts in its extra words (this build sets ZM_ACCOUNT_EXTRA to
 * ZPL_X_COUNT).
 */
#ifndef ZMALLOC_PRELOAD_H
#define ZMALLOC_PRELOAD_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define zpl_likely(x) __builtin_expect(!!(x), 1)
#define zpl_unlikely(x) __builtin_expect(!!(x), 0)

enum { ZPL_UNINIT = 0, ZPL_PLAIN = 1, ZPL_STATS = 2 };

/* Buckets by usable size: <=16, <=32, ..., <=1 MiB, then everything larger. */
#define ZPL_NBUCKETS 18

/* The extra words of a registry slot. */
enum {
    ZPL_X_FLUSHED = 0, /* `used` as last folded into the peak's total (owner only) */
    ZPL_X_ALLOCS = 1,  /* malloc, calloc, aligned, realloc(NULL, n) */
    ZPL_X_REALLOCS = 2, /* realloc of a live block to a new size   */
    ZPL_X_FREES = 3,   /* free, realloc(p, 0)                       */
    ZPL_X_HIST = 4,    /* ZPL_NBUCKETS words: allocations and realloc results */
    ZPL_X_COUNT = ZPL_X_HIST + ZPL_NBUCKETS
};

/* UNINIT until the options are read, then PLAIN or STATS. */
extern _Atomic int zpl_mode;

/* One counted event of `kind`: 'a' an allocation of a block of `usable`
 * bytes, 'r' a realloc whose result has `usable` bytes, 'f' a free; delta
 * is the change in bytes in use. Also where the options are read on the
 * first call (zpl_mode is UNINIT until then, so every call comes here). */
void zpl_count(size_t usable, int kind, int64_t delta) __attribute__((noinline, cold));

/* The test on every call: anything but "plain, no statistics". */
#define ZPL_COUNTING() \
    zpl_unlikely(atomic_load_explicit(&zpl_mode, memory_order_relaxed) != ZPL_PLAIN)

/* Lifecycle hooks (lifecycle.h), front-end layer of the preload library. */
void zm_preload_stats_thread_exit(void);
void zm_preload_stats_fork_child(void);

#endif
