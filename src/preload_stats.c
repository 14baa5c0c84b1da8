/* preload_stats.c: the preload library's options, statistics and exit
 * report (the malloc API is preload.c; preload.h is the seam).
 *
 * Options (rows of the options table, src/options.h, docs/options.md), read
 * once on the first allocation, or by the constructor when none came first:
 *   stats (ZMALLOC_STATS=1)  count allocations; at exit print a report on
 *                            stderr (ZMALLOC_STATS=json: one JSON line).
 *   stats_file (ZMALLOC_STATS_FILE=path)  count allocations; at exit append
 *                            one JSON line per process to path (what zmrun
 *                            uses). Each process image writes its own line:
 *                            a fork child reports what it did after the
 *                            fork, an exec'd program starts from zero; an
 *                            image that ends by _exit, exec or a signal
 *                            writes nothing.
 *
 * Counting: each thread's counters are its slot in the process's thread
 * registry (account.h): bytes in use in `used`, the event counts in the
 * slot's extra words, all written by their owner alone. Bytes in use are
 * also folded into a process-wide total every ZPL_FLUSH bytes, which is
 * where the peak is taken, so the reported peak is below the true peak by
 * at most ZPL_FLUSH bytes per thread; the bytes in use at exit are exact.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "account.h"
#include "backend.h"
#include "options.h"
#include "platform.h"
#include "preload.h"
#include "sample.h"

_Static_assert(ZM_ACCOUNT_EXTRA >= ZPL_X_COUNT, "the preload build sets ZM_ACCOUNT_EXTRA");

#define ZPL_FLUSH ((long long)64 * 1024)

enum { ZPL_OUT_TEXT = 0, ZPL_OUT_JSON = 1 };

_Atomic int zpl_mode;
static int zpl_out_format;
static char zpl_stats_file[4096];

static _Atomic(long long) zpl_used; /* bytes in use, as flushed */
static _Atomic(long long) zpl_peak; /* largest zpl_used seen */
static uint64_t zpl_base[ZPL_X_COUNT]; /* totals at the last fork (child only) */
static int zpl_forked;

/* ---------------------------------------------------------------------
 * Counting
 * --------------------------------------------------------------------- */

static inline void zpl_bump(zm_account *a, unsigned i, uint64_t d) {
    atomic_store_explicit(&a->extra[i], atomic_load_explicit(&a->extra[i], memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static inline unsigned zpl_bucket(size_t usable) {
    if (usable <= 16) return 0;
    unsigned b = 64u - (unsigned)__builtin_clzll((unsigned long long)usable - 1) - 4u;
    return b < ZPL_NBUCKETS ? b : ZPL_NBUCKETS - 1;
}

static void zpl_raise_peak(long long now) {
    long long peak = atomic_load_explicit(&zpl_peak, memory_order_relaxed);
    while (now > peak && !atomic_compare_exchange_weak_explicit(&zpl_peak, &peak, now,
                                                                memory_order_relaxed,
                                                                memory_order_relaxed)) {
    }
}

/* Folds what slot a counted since its last flush into zpl_used. By the
 * owner, or for any slot in the fork child (one thread left). */
static void zpl_flush(zm_account *a) {
    long long used = atomic_load_explicit(&a->used, memory_order_relaxed);
    long long d = used - (long long)atomic_load_explicit(&a->extra[ZPL_X_FLUSHED],
                                                         memory_order_relaxed);
    atomic_store_explicit(&a->extra[ZPL_X_FLUSHED], (uint64_t)used, memory_order_relaxed);
    zpl_raise_peak(atomic_fetch_add_explicit(&zpl_used, d, memory_order_relaxed) + d);
}

static void zpl_init(void);

void zpl_count(size_t usable, int kind, int64_t delta) {
    if (atomic_load_explicit(&zpl_mode, memory_order_relaxed) == ZPL_UNINIT) zpl_init();
    if (atomic_load_explicit(&zpl_mode, memory_order_relaxed) != ZPL_STATS) return;
    unsigned event = kind == 'a' ? ZPL_X_ALLOCS : kind == 'r' ? ZPL_X_REALLOCS : ZPL_X_FREES;
    zm_account *a = zm_account_self();
    if (zpl_unlikely(!a)) {
        /* Exiting thread: straight into the process totals. */
        zm_account_add_exited_extra(event, 1);
        if (kind != 'f') zm_account_add_exited_extra(ZPL_X_HIST + zpl_bucket(usable), 1);
        zm_account_slow(delta);
        zpl_raise_peak(atomic_fetch_add(&zpl_used, delta) + delta);
        return;
    }
    zpl_bump(a, event, 1);
    if (kind != 'f') zpl_bump(a, ZPL_X_HIST + zpl_bucket(usable), 1);
    zm_owner_add(&a->used, delta);
    long long pending = atomic_load_explicit(&a->used, memory_order_relaxed) -
                        (long long)atomic_load_explicit(&a->extra[ZPL_X_FLUSHED],
                                                        memory_order_relaxed);
    if (pending > ZPL_FLUSH || pending < -ZPL_FLUSH) zpl_flush(a);
}

/* Thread exit, before the registry folds the slot: the rest of its bytes
 * into the peak's total. */
void zm_preload_stats_thread_exit(void) {
    zm_account *a = zm_thread_slot;
    if (a) zpl_flush(a);
}

static void flush_slot(zm_account *a, void *arg) {
    (void)arg;
    zpl_flush(a);
}

/* The child has one thread: every thread's unflushed bytes go into the
 * total (their memory is still in our copy of the address space), then the
 * totals become the base the child's report is relative to. */
void zm_preload_stats_fork_child(void) {
    if (atomic_load_explicit(&zpl_mode, memory_order_relaxed) != ZPL_STATS) return;
    zm_account_each(flush_slot, NULL);
    zm_account_sum_extra(zpl_base, ZPL_X_COUNT);
    atomic_store(&zpl_peak, atomic_load(&zpl_used));
    zpl_forked = 1;
}

/* ---------------------------------------------------------------------
 * Reading options
 * --------------------------------------------------------------------- */

static _Atomic int zpl_options_read;

static void zpl_init(void) {
    int saved = errno;
    if (!atomic_exchange(&zpl_options_read, 1)) {
        const char *stats = zm_option_str(ZM_OPT_STATS);
        const char *file = zm_option_str(ZM_OPT_STATS_FILE);
        size_t len = strlen(file);
        int mode = ZPL_PLAIN;
        if (len && len < sizeof zpl_stats_file) {
            memcpy(zpl_stats_file, file, len + 1);
            zpl_out_format = ZPL_OUT_JSON;
            mode = ZPL_STATS;
        }
        if (strcmp(stats, "json") == 0) {
            zpl_out_format = ZPL_OUT_JSON;
            mode = ZPL_STATS;
        } else if (*stats && strcmp(stats, "0") != 0) {
            mode = ZPL_STATS;
        }
        /* Statistics count every free: free() tests no mode word, only the
         * free filter, so every byte of it is set first (saturated bytes
         * stay set; sampling and guards still work, their frees just all
         * take the slow path, which tells them apart). */
        if (mode == ZPL_STATS) {
            for (size_t i = 0; i < sizeof zm_smp_filter; i++)
                atomic_store_explicit(&zm_smp_filter[i], 255, memory_order_relaxed);
            atomic_store_explicit(&zm_smp_any, 1, memory_order_release);
        }
        atomic_store(&zpl_mode, mode);
        /* Plain: the fast paths may run (statistics keep every thread on
         * the slow path, which counts: sample.h). */
        if (mode == ZPL_PLAIN) zm_smp_hold(0);
    }
    /* Another thread is reading them: plain until it is done. */
    int expected = ZPL_UNINIT;
    atomic_compare_exchange_strong(&zpl_mode, &expected, ZPL_PLAIN);
    errno = saved;
}

/* A program that allocates nothing before main gets its options here. */
__attribute__((constructor(101))) static void zpl_constructor(void) {
    if (atomic_load(&zpl_mode) == ZPL_UNINIT) zpl_init();
}

/* ---------------------------------------------------------------------
 * The exit report
 * --------------------------------------------------------------------- */

typedef struct zpl_totals {
    uint64_t allocs, reallocs, frees, hist[ZPL_NBUCKETS];
    long long used, peak;
} zpl_totals;

static void zpl_collect(zpl_totals *tot) {
    uint64_t x[ZPL_X_COUNT];
    zm_account_sum_extra(x, ZPL_X_COUNT);
    if (zpl_forked)
        for (unsigned i = 0; i < ZPL_X_COUNT; i++) x[i] -= zpl_base[i];
    tot->allocs = x[ZPL_X_ALLOCS];
    tot->reallocs = x[ZPL_X_REALLOCS];
    tot->frees = x[ZPL_X_FREES];
    memcpy(tot->hist, &x[ZPL_X_HIST], sizeof tot->hist);
    long long used = zm_account_total();
    long long peak = atomic_load(&zpl_peak);
    tot->used = used;
    tot->peak = used > peak ? used : peak;
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
    size_t n = 0;
    if (zm_os_read_self("cmdline", raw, sizeof raw, &n) != 0) n = 0;
    for (size_t i = 0; i < n; i++)
        if (raw[i] == '\0') raw[i] = ' ';
    while (n > 0 && raw[n - 1] == ' ') n--;
    zpl_json_str(out, cap, raw, n);
}

__attribute__((destructor(101))) static void zpl_report(void) {
    if (atomic_load(&zpl_mode) != ZPL_STATS) return;
    int saved = errno;
    zpl_totals t;
    zpl_collect(&t);
    size_t hwm = zm_os_self_status_kb("VmHWM:") * 1024;
    size_t rss = zm_os_self_status_kb("VmRSS:") * 1024;
    zm_be_stats st = {0};
    zm_be_get_stats(0, &st);
    char cmd[1200], exe[1024], exe_json[1200];
    zpl_cmdline(cmd, sizeof cmd);
    size_t el = 0;
    if (zm_os_self_exe(exe, sizeof exe, &el) != 0) el = 0;
    zpl_json_str(exe_json, sizeof exe_json, exe, el);

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
                (unsigned long long)t.frees, t.used, t.peak, rss, hwm);
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
        ZPL_PUT("  peak used %lld bytes, used at exit %lld bytes\n", t.peak, t.used);
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
        /* One write per record: O_APPEND keeps records of concurrent
         * processes whole. */
        zm_os_append_file(zpl_stats_file, buf, o);
    } else {
        zm_os_write_all(2, buf, o);
    }
    errno = saved;
}
