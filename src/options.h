/* options.h: the one table of run-time options and how they are read.
 *
 * Every tunable policy value of the library is a row of ZM_OPTIONS below:
 *
 *   X(ID, "name", default, "doc")
 *
 * which gives an enum ZM_OPT_<ID>, the name used in ZMALLOC_CONF, the
 * variable ZMALLOC_<NAME> (the name in upper case) and a line of
 * docs/options.md. A default that is a string literal (or NULL) makes a
 * string option, read with zm_option_str(); any other default makes a number
 * option, read with zm_option(). docs/options.md is checked against this
 * table by tests/test_options.c, so add the row here and regenerate the doc
 * with `build/<dir>/tests/test_options --markdown` (the test says so).
 *
 * Values come from the environment, as MIMALLOC_* and MALLOC_CONF do:
 *   ZMALLOC_CONF=name:value,name:value   several options at once;
 *   ZMALLOC_<NAME>=value                 one option, wins over ZMALLOC_CONF.
 * A number is decimal with an optional sign and an optional k, m or g suffix
 * (KiB, MiB, GiB; "kb"/"kib" are accepted too), or true/false/yes/no/on/off.
 * A value that does not parse, or an unknown name in ZMALLOC_CONF, is
 * reported on stderr ("zmalloc: option ...") and the default is kept.
 *
 * The table is read once, on the first zm_option() call, from libc's
 * environ or, when that is not set up yet (a preloaded malloc called by the
 * dynamic loader), from /proc/self/environ. Reading it never allocates with
 * malloc, so it is safe from the pool (which may be malloc), before main and
 * in the preload library. It is for slow paths only: read a value once into
 * your own variable, never on a fast path.
 */
#ifndef ZMALLOC_OPTIONS_H
#define ZMALLOC_OPTIONS_H

#include <stddef.h>

/* Rows are grouped by the layer that reads them. Keep "doc" one sentence
 * that says the unit and what 0 means when it means something. */
#define ZM_OPTIONS(X)                                                                            \
    /* verification layer (ZMALLOC_DEBUG=1 builds) */                                            \
    X(LEAK_REPORT, "leak_report", 0,                                                             \
      "verification builds: 1 prints zmalloc_report_leaks() to stderr at exit")                 \
    X(QUARANTINE_BLOCKS, "quarantine_blocks", 512,                                               \
      "verification builds: freed blocks each thread's quarantine holds before the oldest is "   \
      "checked and released")                                                                            \
    X(QUARANTINE_BYTES, "quarantine_bytes", (1 << 20),                                           \
      "verification builds: bytes each thread's quarantine holds; a freed block larger than "    \
      "this goes straight back to the backend")                                                  \
    /* pool backend (src/pool/purge.c reads these once, when the first heap is made) */        \
    X(POOL_DIRTY_AGE_MS, "pool_dirty_age_ms", 1000,                                              \
      "pool: ms a free page stays resident before the purge timer may return it to the OS; "     \
      "also how long an exited thread's parked heap waits")                                      \
    X(POOL_PURGE_INTERVAL_MS, "pool_purge_interval_ms", 250,                                     \
      "pool: ms between two looks of a heap's purge timer at its dirty pages (from its slow "    \
      "paths)")                                                                                  \
    X(POOL_DIRTY_RESERVE, "pool_dirty_reserve", (2 << 20),                                       \
      "pool: bytes of free pages per heap the purge timer leaves resident (zmalloc_purge "       \
      "returns them)")                                                                           \
    X(POOL_DIRTY_MAX, "pool_dirty_max", (64 << 20),                                              \
      "pool: bytes of free resident pages per heap above which the oldest are returned at "      \
      "once, down to half")                                                                      \
    X(POOL_SEGMENT_CACHE, "pool_segment_cache", 8,                                               \
      "pool: empty 4 MiB segments kept with their header resident (beyond: header "             \
      "decommitted, address space kept)")                                                        \
    X(POOL_HUGE_CACHE, "pool_huge_cache", (32 << 20),                                            \
      "pool: bytes of freed huge (> 256 KiB) mappings kept for reuse; 0 unmaps each at once")    \
    X(POOL_HUGE_CACHE_ENTRY_MAX, "pool_huge_cache_entry_max", (32 << 20),                        \
      "pool: largest freed huge block (bytes) the huge cache keeps")                             \
    X(POOL_HUGE_CACHE_AGE_MS, "pool_huge_cache_age_ms", 250,                                     \
      "pool: ms a cached huge mapping waits for reuse before it is unmapped")                    \
    X(POOL_HEAP_PARK_MAX, "pool_heap_park_max", 8,                                               \
      "pool: exited threads' heaps kept whole (pages included) for the next threads; 0 "         \
      "abandons each at once")                                                                   \
    X(POOL_CARVE_BYTES, "pool_carve_bytes", 4096,                                                \
      "pool: bytes of blocks a page carves at a time (lazily, so a fresh page costs RSS only "   \
      "for what is used)")                                                                       \
    /* preload library (libzmalloc-preload.so) */                                                \
    X(STATS, "stats", "",                                                                        \
      "preload library: 1 prints allocation statistics to stderr at exit, json prints them as "  \
      "one JSON line")                                                                           \
    X(STATS_FILE, "stats_file", "",                                                              \
      "preload library: at exit, append one JSON line of statistics per process to this file") \
    /* heap profiler and guarded sampling (sample.c, prof.c, guard.c) */                         \
    X(PROF_SAMPLE, "prof_sample", 0,                                                             \
      "mean bytes between heap-profile samples (exponentially distributed intervals); 0: the "  \
      "profiler is off")                                                                         \
    X(PROF_FILE, "prof_file", "",                                                                \
      "file the heap profile is written to when the process exits (%p: the process id); "       \
      "empty: none")                                                                             \
    X(GUARD_SAMPLE, "guard_sample", 0,                                                           \
      "guarded sampling: about one allocation in this many of at most 8 KiB is placed against "  \
      "a guard page; 0: off")

typedef enum zm_option_id {
#define ZM_OPTION_ENUM_(id, name, def, doc) ZM_OPT_##id,
    ZM_OPTIONS(ZM_OPTION_ENUM_)
#undef ZM_OPTION_ENUM_
    ZM_OPT_COUNT
} zm_option_id;

/* The value of a number option (for a string option: 1 when it is set to a
 * non-empty string, else 0). */
long long zm_option(zm_option_id id);
/* The value of a string option, never NULL for one (the default or ""),
 * NULL for a number option. */
const char *zm_option_str(zm_option_id id);
/* id of the option called name (as in ZMALLOC_CONF), or -1. */
int zm_option_find(const char *name);

/* One row of the table, for the docs check and zmalloc_get_option(). */
typedef struct zm_option_desc {
    const char *name;
    const char *doc;
    long long def;       /* number options */
    const char *def_str; /* string options (NULL for number options) */
    int is_string;
} zm_option_desc;
const zm_option_desc *zm_option_info(zm_option_id id);

/* Tests only: forget what was read and read env (a NULL-terminated
 * "NAME=value" array) instead of the process environment, at once. */
void zm_options_reload_from(char *const *env);

#endif
