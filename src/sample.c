/* sample.c: when to sample, and the stacks of samples.
 *
 * One thread-local countdown (zm_smp_countdown, sample.h) is all the fast
 * path sees. Behind it each thread keeps two distances, both in bytes of
 * requested allocations:
 *   prof_left   to the next heap-profile sample: exponentially distributed
 *               with mean ZMALLOC_PROF_SAMPLE, as tcmalloc and jemalloc draw
 *               them. Bytes then form a Poisson process of rate 1/T, so an
 *               allocation of s bytes is sampled with probability
 *               1 - exp(-s/T), and weighting the sample by the inverse of
 *               that makes every per-site estimate unbiased.
 *   guard_left  to the next guarded allocation: exponential with mean
 *               N * m, where m estimates the thread's mean request size, so
 *               that about one allocation in N is guarded. The fast path
 *               counts bytes, not calls; m comes from the sizes the slow
 *               path sees, which are size-biased (a block is hit in
 *               proportion to its size), and the harmonic mean of a
 *               size-biased sample is the plain mean: m = 1 / avg(1/s).
 *               Which allocation is guarded is size-biased too (as in
 *               tcmalloc, whose guarded sampling is a subset of its byte
 *               samples): a 4 KiB block is 256 times likelier than a 16 B
 *               one to be the one.
 * The countdown is armed with the nearer of the two, capped at ZM_SMP_POLL
 * so that a thread whose sampling is off still notices soon that
 * zmalloc_prof_set_sample() turned it on, or that a memory limit was set
 * (the front end's fast path tests no limit: while one is set, every
 * thread is held, sample.h, and takes the slow path, which checks it).
 * A new thread's countdown is 0: its first allocation initialises it here.
 *
 * Stacks are walked through frame pointers: no allocation, no lock, no
 * unwinder state, safe in a signal handler. Frames are followed only while
 * they lie between the current stack pointer and this thread's stack top
 * (the thread descriptor glibc places above a thread's stack, or
 * __libc_stack_end for the main thread), so a frame of code built without
 * frame pointers ends the walk instead of faulting. Stacks are complete
 * for code built with -fno-omit-frame-pointer; elsewhere they hold at least
 * the allocating function.
 */
#define _GNU_SOURCE
#include "sample.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "options.h"
#include "zmalloc.h"

/* How far ahead the countdown is armed at most (requested bytes). In the
 * front end, a limit set by another thread is seen that soon: a block of
 * the fast path holds at most 16 times its request (pool.h: 1 byte gets
 * 16, 0 bytes are never fast), so ZMALLOC_LIMIT_SLACK / 16 requested bytes
 * charge at most ZMALLOC_LIMIT_SLACK, the bound zmalloc.h states. A slow
 * path per 16 KiB requested costs well under an instruction per
 * allocation. The preload library has no limit: 64 MiB. */
#if ZM_PRELOAD_BUILD
#define ZM_SMP_POLL ((long)64 << 20)
#define ZM_SMP_HELD_AT_START 1
#else
#define ZM_SMP_POLL ((long)(ZMALLOC_LIMIT_SLACK / 16))
#define ZM_SMP_HELD_AT_START 0
#endif

__thread long zm_smp_countdown __attribute__((tls_model("initial-exec")));
_Atomic unsigned char zm_smp_filter[1u << ZM_SMP_FILTER_BITS];
_Atomic unsigned char zm_smp_any;

/* Process-wide settings; threads pick up a change at their next slow path. */
static _Atomic long prof_interval; /* bytes, 0 = off */
static _Atomic long guard_rate;    /* N, 0 = off */
static _Atomic int configured;
static _Atomic int held = ZM_SMP_HELD_AT_START;

typedef struct smp_thread {
    int live;          /* initialised */
    int busy;          /* inside the sampler: nested allocations are not sampled */
    uint64_t rng;      /* xorshift64* state */
    long armed;        /* what zm_smp_countdown was set to */
    long prof_left;    /* bytes to the next profile sample (LONG_MAX: off) */
    long guard_left;   /* bytes to the next guarded allocation (LONG_MAX: off) */
    long prof_seen;    /* prof_interval these distances were drawn for */
    long guard_seen;   /* guard_rate ... */
    double inv_size;   /* running mean of 1/s over sampled sizes */
    uintptr_t stack_top;
} smp_thread;

static __thread smp_thread smp_self __attribute__((tls_model("initial-exec")));
static _Atomic uint64_t seed_counter;

/* ---------------------------------------------------------------------
 * Random draws
 * --------------------------------------------------------------------- */

static uint64_t next_random(smp_thread *t) {
    uint64_t x = t->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t->rng = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* log and expm1 of our own: the library links no libm. Mapping libm
 * (Debian 12: 316 KiB resident once loaded) for two calls on the sampling
 * path cost every process that loads the preload library that much RSS,
 * a sixth of the peak of the bench's smallest workloads (cache-thrash:
 * 2.3 MiB against glibc's 1.8). Both only need the accuracy of a sampling
 * weight; tests/prof/test_prof_sampler.c compares them with libm's. */

/* ln x for a normal x > 0 (the draws below pass (0, 1]): x = m 2^e with m
 * in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(t), t = (m - 1) / (m + 1), |t| <=
 * 0.172, by its series to t^15 (error below 1e-13). */
double zm_smp_log(double x) {
    union {
        double d;
        uint64_t u;
    } v = {.d = x};
    int e = (int)((v.u >> 52) & 0x7ff) - 1023;
    v.u = (v.u & 0x000fffffffffffffull) | 0x3ff0000000000000ull; /* m in [1, 2) */
    double m = v.d;
    if (m > 1.4142135623730951) {
        m *= 0.5;
        e++;
    }
    double t = (m - 1.0) / (m + 1.0), t2 = t * t;
    double series =
        1.0 + t2 * (1.0 / 3 + t2 * (1.0 / 5 + t2 * (1.0 / 7 + t2 * (1.0 / 9 + t2 * (1.0 / 11 + t2 * (1.0 / 13 + t2 * (1.0 / 15)))))));
    return (double)e * 0.6931471805599453 + 2.0 * t * series;
}

/* e^x - 1 for x <= 0 (sampling weights: x = -size / interval). Taylor to
 * x^13 / 13! for |x| < 1/2 (no cancellation, relative error below 1e-13);
 * beyond, e^x by x = k ln 2 + r, |r| <= ln 2 / 2, minus 1 (which cannot
 * cancel there: e^x <= 0.61). */
double zm_smp_expm1(double x) {
    if (x > -0.5) {
        double term = x, sum = x;
        for (int n = 2; n <= 13; n++) {
            term *= x / n;
            sum += term;
        }
        return sum;
    }
    if (x < -745.0) return -1.0;
    double kf = x * 1.4426950408889634; /* x / ln 2 */
    int k = (int)(kf - 0.5);            /* round to nearest (kf < 0) */
    double r = x - (double)k * 0.6931471805599453;
    double term = 1.0, ex = 1.0;
    for (int n = 1; n <= 13; n++) {
        term *= r / n;
        ex += term;
    }
    /* times 2^k, k in [-1075, -1]: in two steps, so 2^k is never subnormal
     * on its own */
    union {
        double d;
        uint64_t u;
    } p = {.u = (uint64_t)(1023 + k / 2) << 52}, q = {.u = (uint64_t)(1023 + (k - k / 2)) << 52};
    return ex * p.d * q.d - 1.0;
}

/* An exponentially distributed distance of the given mean, >= 0. */
static long draw_exponential(smp_thread *t, double mean) {
    /* U in (0, 1]: never log(0). */
    double u = ((double)(next_random(t) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double d = -zm_smp_log(u) * mean;
    return d >= (double)(LONG_MAX / 2) ? LONG_MAX / 2 : (long)d;
}

static uint64_t mix_seed(uint64_t x) {
    /* splitmix64's finaliser: distinct inputs, unrelated outputs. */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return (x ^ (x >> 31)) | 1;
}

/* ---------------------------------------------------------------------
 * Options
 * --------------------------------------------------------------------- */

static long clamp_long(long long v) {
    if (v < 0) return 0;
    return v > LONG_MAX / 4 ? LONG_MAX / 4 : (long)v;
}

/* The options table (options.h) is read once; a later
 * zmalloc_prof_set_sample()/zmalloc_guard_set_sample() overrides it. */
void zm_smp_configure(void) {
    if (atomic_exchange(&configured, 1)) return;
    int saved = errno;
#ifndef ZMALLOC_NO_SAMPLING /* no hooks (sample.h): nothing to turn on */
    atomic_store(&prof_interval, clamp_long(zm_option(ZM_OPT_PROF_SAMPLE)));
    atomic_store(&guard_rate, clamp_long(zm_option(ZM_OPT_GUARD_SAMPLE)));
    zm_prof_set_file(zm_option_str(ZM_OPT_PROF_FILE));
#endif
    errno = saved;
}

long zm_smp_prof_interval(void) {
    return atomic_load_explicit(&prof_interval, memory_order_relaxed);
}

long zm_smp_guard_rate(void) {
    return atomic_load_explicit(&guard_rate, memory_order_relaxed);
}

/* ---------------------------------------------------------------------
 * Per-thread state and the decision
 * --------------------------------------------------------------------- */

extern void *__libc_stack_end;

static void thread_init(smp_thread *t) {
    uintptr_t sp = (uintptr_t)&t;
    uintptr_t self = (uintptr_t)pthread_self();
    uintptr_t main_top = (uintptr_t)__libc_stack_end;
    /* A glibc thread's static TLS blocks lie between its stack and its
     * descriptor: this thread-local's address bounds the frames better. */
    uintptr_t tls = (uintptr_t)&smp_self;
    if (sp < tls && tls < self) self = tls;
    if (sp < self && self - sp < ((uintptr_t)1 << 30))
        t->stack_top = self;
    else if (sp < main_top && main_top - sp < ((uintptr_t)1 << 30))
        t->stack_top = main_top;
    else
        t->stack_top = 0;
    if (!t->rng) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        t->rng = mix_seed((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^ (uintptr_t)t ^
                          atomic_fetch_add(&seed_counter, 1) * 0x9e3779b97f4a7c15ull);
    }
    t->inv_size = 1.0 / 256;
    t->prof_seen = t->guard_seen = -1;
    t->live = 1;
}

/* Redraw the distances whose setting changed, then arm the countdown. */
static void arm(smp_thread *t) {
    long interval = zm_smp_prof_interval(), rate = zm_smp_guard_rate();
    if (interval != t->prof_seen) {
        t->prof_left = interval > 0 ? draw_exponential(t, (double)interval) : LONG_MAX;
        t->prof_seen = interval;
    }
    if (rate != t->guard_seen) {
        t->guard_left = rate > 0 ? draw_exponential(t, (double)rate / t->inv_size) : LONG_MAX;
        t->guard_seen = rate;
    }
    long next = t->prof_left < t->guard_left ? t->prof_left : t->guard_left;
    if (next > ZM_SMP_POLL) next = ZM_SMP_POLL;
    if (atomic_load_explicit(&held, memory_order_relaxed)) next = -1;
    t->armed = next;
    zm_smp_countdown = next;
}

void zm_smp_decide(size_t size, int guard_ok, zm_smp_decision *d) {
    smp_thread *t = &smp_self;
    d->guard = d->profile = 0;
    d->weight = 0;
    if (t->busy) {
        /* A signal handler's allocation inside the sampler: not sampled;
         * the interrupted slow path re-arms the countdown. */
        zm_smp_countdown = LONG_MAX / 2;
        return;
    }
    if (t->live && t->prof_left == LONG_MAX && t->guard_left == LONG_MAX &&
        t->prof_seen == zm_smp_prof_interval() && t->guard_seen == zm_smp_guard_rate()) {
        /* Nothing sampled, no setting changed: the countdown ran out on its
         * poll window (or this thread is held). Re-arm, at the cost of
         * these tests: what arm() would do with both distances off. */
        long next = atomic_load_explicit(&held, memory_order_relaxed) ? -1 : ZM_SMP_POLL;
        t->armed = next;
        zm_smp_countdown = next;
        return;
    }
    t->busy = 1;
    if (!atomic_load_explicit(&configured, memory_order_relaxed)) zm_smp_configure();
    if (!t->live) {
        /* The thread's first allocation: draw the distances, then count
         * this allocation against them like any other. */
        thread_init(t);
        t->inv_size = 1.0 / (size ? (double)size : 1.0);
        arm(t);
        zm_smp_countdown = (long)((unsigned long)t->armed - size);
    }
    /* Bytes consumed since arming, this allocation included. */
    unsigned long used = (unsigned long)t->armed - (unsigned long)zm_smp_countdown;
    long consumed = used > (unsigned long)(LONG_MAX / 4) ? LONG_MAX / 4 : (long)used;
    if (t->prof_left != LONG_MAX) t->prof_left -= consumed;
    if (t->guard_left != LONG_MAX) t->guard_left -= consumed;
    double s = size ? (double)size : 1.0;
    /* Size-biased sizes: their harmonic mean estimates the mean request. */
    t->inv_size += (1.0 / s - t->inv_size) * (1.0 / 16);
    long interval = zm_smp_prof_interval();
    if (t->prof_left < 0 && t->prof_left != LONG_MAX) {
        if (interval > 0 && interval == t->prof_seen) {
            d->profile = 1;
            /* P(sampled) = 1 - exp(-s/T); expm1 keeps precision when s << T. */
            d->weight = 1.0 / -zm_smp_expm1(-s / (double)interval);
        }
        t->prof_left = interval > 0 ? draw_exponential(t, (double)interval) : LONG_MAX;
        t->prof_seen = interval;
    }
    long rate = zm_smp_guard_rate();
    if (t->guard_left < 0 && t->guard_left != LONG_MAX) {
        if (rate > 0 && rate == t->guard_seen && guard_ok && size <= ZM_GUARD_MAX) d->guard = 1;
        t->guard_left = rate > 0 ? draw_exponential(t, (double)rate / t->inv_size) : LONG_MAX;
        t->guard_seen = rate;
    }
    arm(t);
    t->busy = 0;
}

void zm_smp_hold(int on) {
    atomic_store_explicit(&held, on ? 1 : 0, memory_order_relaxed);
}

int zm_smp_held(void) {
    return atomic_load_explicit(&held, memory_order_relaxed);
}

void zm_smp_expire(void) {
    smp_thread *t = &smp_self;
    if (!t->live || t->busy) return; /* a new thread's countdown is 0 already */
    /* Keep armed - countdown (the bytes consumed) as it is, with the
     * countdown at -1: the next allocation sees it negative. */
    t->armed = (long)((unsigned long)t->armed - (unsigned long)zm_smp_countdown - 1);
    zm_smp_countdown = -1;
}

void zm_smp_seed(uint64_t seed) {
    smp_thread *t = &smp_self;
    if (!t->live) thread_init(t);
    t->rng = mix_seed(seed);
    t->inv_size = 1.0 / 256;
    t->prof_seen = t->guard_seen = -1;
    arm(t);
}

/* ---------------------------------------------------------------------
 * Stacks
 * --------------------------------------------------------------------- */

void zm_smp_capture(zm_smp_stack *s, void *ret, void *frame) {
    smp_thread *t = &smp_self;
    int n = 0;
    if (ret) s->pc[n++] = ret;
    uintptr_t lo = (uintptr_t)&s, top = t->stack_top, fp = (uintptr_t)frame;
    if (s->pc[0] == NULL) lo = 0;
    while (n < ZM_SMP_DEPTH && top && fp > lo && fp <= top - 2 * sizeof(void *) &&
           (fp & (sizeof(void *) - 1)) == 0) {
        uintptr_t *f = (uintptr_t *)fp;
        /* No code lives below 4 MiB (non-PIE executables start at
         * 0x400000, PIE ones and libraries far higher): a smaller "return
         * address" is data, as found above the outermost real frame. */
        if (f[1] < ((uintptr_t)4 << 20)) break;
        /* The entry point's own frame, when it has one: its return
         * address is ret, already recorded. */
        if (!(n == 1 && (void *)f[1] == ret)) s->pc[n++] = (void *)f[1];
        /* Frames grow upwards, and no frame is larger than 1 MiB. */
        if (f[0] <= fp || f[0] - fp > ((uintptr_t)1 << 20)) break;
        fp = f[0];
    }
    s->depth = n;
}

/* ---------------------------------------------------------------------
 * The free filter
 * --------------------------------------------------------------------- */

/* Saturating counters: a bucket that ever reached 255 stays set (its frees
 * then always ask the slow path, which is merely slower). */
void zm_smp_filter_add(const void *p) {
    /* Set before the block is handed out, like its counter: whoever frees
     * it got the pointer after this store. */
    if (!atomic_load_explicit(&zm_smp_any, memory_order_relaxed))
        atomic_store_explicit(&zm_smp_any, 1, memory_order_release);
    _Atomic unsigned char *c = &zm_smp_filter[zm_smp_slot(p)];
    unsigned char v = atomic_load_explicit(c, memory_order_relaxed);
    while (v != 255 &&
           !atomic_compare_exchange_weak_explicit(c, &v, (unsigned char)(v + 1),
                                                  memory_order_release, memory_order_relaxed)) {
    }
}

void zm_smp_filter_remove(const void *p) {
    _Atomic unsigned char *c = &zm_smp_filter[zm_smp_slot(p)];
    unsigned char v = atomic_load_explicit(c, memory_order_relaxed);
    while (v != 255 && v != 0 &&
           !atomic_compare_exchange_weak_explicit(c, &v, (unsigned char)(v - 1),
                                                  memory_order_release, memory_order_relaxed)) {
    }
}

/* ---------------------------------------------------------------------
 * Public settings
 * --------------------------------------------------------------------- */

static void apply_here(void) {
    smp_thread *t = &smp_self;
    if (!atomic_load(&configured)) zm_smp_configure();
    if (!t->live) thread_init(t);
    arm(t);
}

void zmalloc_prof_set_sample(size_t bytes) {
    if (!atomic_load(&configured)) zm_smp_configure();
#ifdef ZMALLOC_NO_SAMPLING
    bytes = 0;
#endif
    atomic_store(&prof_interval, clamp_long(bytes > (size_t)LONG_MAX ? LONG_MAX : (long long)bytes));
    apply_here();
}

size_t zmalloc_prof_get_sample(void) {
    if (!atomic_load(&configured)) zm_smp_configure();
    return (size_t)zm_smp_prof_interval();
}

void zmalloc_guard_set_sample(size_t n) {
    if (!atomic_load(&configured)) zm_smp_configure();
#ifdef ZMALLOC_NO_SAMPLING
    n = 0;
#endif
    atomic_store(&guard_rate, clamp_long(n > (size_t)LONG_MAX ? LONG_MAX : (long long)n));
    apply_here();
}
