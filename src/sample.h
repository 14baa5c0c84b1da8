/* sample.h: the two hooks of sampled profiling and guarded sampling.
 *
 * Both subsystems (prof.c: the heap profiler; guard.c: guarded sampling)
 * pick a few allocations and treat them specially. The fast path sees them
 * through two inline tests and nothing else:
 *
 *   allocation  zm_smp_tick(size): one thread-local countdown, decremented
 *               by the request's size; negative -> zm_smp_* slow path. When
 *               both subsystems are off the countdown starts at LONG_MAX,
 *               so the branch is never taken. The slow path holds two
 *               countdowns of its own (bytes to the next profile sample,
 *               allocations to the next guarded one) and arms the fast one
 *               with whichever comes first (allocations are counted through
 *               the bytes: see sample.c).
 *   free        zm_smp_hit(ptr): one byte of a 16 KiB counting filter,
 *               indexed by address bits 4-17. Every sampled or guarded
 *               block (and a block pinned by a reallocation's reclaim
 *               handler, zmalloc.c) bumps its byte while it is live, so
 *               a free of such a block always takes the slow path; any other
 *               free takes it only on a collision (probability about live
 *               samples / 16384). With nothing sampled the filter is all
 *               zeros: shift, mask, one load, one never-taken branch (about
 *               6 instructions with the table's address, one cache line of a
 *               16 KiB table); before the first block ever enters the
 *               filter, one byte (zm_smp_any) stands in for it: load, test,
 *               never-taken branch.
 *
 * Everything else is out of line (cold, noinline) in sample.c, prof.c and
 * guard.c. None of it takes a lock or calls malloc: a sampled allocation
 * costs a PRNG draw, a frame-pointer walk and lock-free table inserts.
 */
#ifndef ZMALLOC_SAMPLE_H
#define ZMALLOC_SAMPLE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define ZM_SMP_HIDDEN __attribute__((visibility("hidden")))

/* Per-thread countdown of the fast path: bytes left before the slow path
 * runs. 0 in a new thread (so its first allocation initialises it). */
extern __thread long zm_smp_countdown __attribute__((tls_model("initial-exec"))) ZM_SMP_HIDDEN;

/* Counting filter of live sampled blocks (sample.c). */
#define ZM_SMP_FILTER_BITS 14
extern _Atomic unsigned char zm_smp_filter[1u << ZM_SMP_FILTER_BITS] ZM_SMP_HIDDEN;
/* 1 once any block has entered the filter (never cleared): until then a
 * free tests this byte alone, 3 instructions, not the filter's 9. */
extern _Atomic unsigned char zm_smp_any ZM_SMP_HIDDEN;

static inline unsigned zm_smp_slot(const void *p) {
    /* Blocks are at least 16-byte aligned: the next 14 address bits, as
     * they are (shift, and: two instructions on every free). A collision
     * only sends a free to the slow path, which finds the block is not
     * sampled; blocks at the same offset of 256 KiB windows share a slot,
     * so a live sample costs about 1/16384 of random frees a slow-path
     * visit, as a hash would. (A multiplicative hash spread strides better
     * but cost three more instructions per free, sampling on or off.) */
    return (unsigned)(((uintptr_t)p >> 4) & ((1u << ZM_SMP_FILTER_BITS) - 1));
}

/* 1 when this allocation must go to the slow path. The countdown is more
 * than the sampler's: it also holds every thread on the slow path while a
 * memory limit is set (the front end's fast path tests no limit) and,
 * in the preload library, before its options are read and with its
 * statistics on (see zm_smp_hold), so it stays in every build. */
static inline int zm_smp_tick(size_t size) {
    /* Unsigned: no overflow to speak of (size < SIZE_MAX/2, countdown >= 0). */
    long left = (long)((unsigned long)zm_smp_countdown - size);
    zm_smp_countdown = left;
    return __builtin_expect(left < 0, 0);
}

/* A build configured with -DZMALLOC_SAMPLING=OFF (ZMALLOC_NO_SAMPLING)
 * samples nothing: the profiler's and the guard's setters do nothing and
 * their getters answer 0 (sample.c), and a free tests zm_smp_any alone,
 * which only the blocks that need the slow path without sampling set (a
 * block pinned by a reallocation's reclaim handler, the preload's
 * statistics). It exists as the baseline of the "compiled in but off" cost
 * row of make bench (issue 13, item 3). */
#ifdef ZMALLOC_NO_SAMPLING
static inline int zm_smp_hit(const void *ptr) {
    (void)ptr;
    return __builtin_expect(atomic_load_explicit(&zm_smp_any, memory_order_relaxed) != 0, 0);
}
#else

/* 1 when ptr may be a sampled or guarded block (then ask the slow path). */
static inline int zm_smp_hit(const void *ptr) {
    /* Relaxed: other threads update other blocks' counters in the same
     * byte; a block's own counter was set before the block was handed out,
     * so no ordering is needed (a plain byte load on x86 and arm64). */
    if (__builtin_expect(atomic_load_explicit(&zm_smp_any, memory_order_relaxed) == 0, 1)) return 0;
    return __builtin_expect(
        atomic_load_explicit(&zm_smp_filter[zm_smp_slot(ptr)], memory_order_relaxed) != 0, 0);
}
#endif

/* sample.c's own ln x (x > 0, normal) and e^x - 1 (x <= 0): no libm. */
double zm_smp_log(double x) ZM_SMP_HIDDEN;
double zm_smp_expm1(double x) ZM_SMP_HIDDEN;

/* The stack of an allocation or free: return addresses, innermost first. */
#define ZM_SMP_DEPTH 32
typedef struct zm_smp_stack {
    int depth;
    void *pc[ZM_SMP_DEPTH];
} zm_smp_stack;

/* What the slow path decided for one allocation. */
typedef struct zm_smp_decision {
    int guard;     /* place it in the guarded area (guard.c)        */
    int profile;   /* record it in the profile (prof.c)             */
    double weight; /* profile: allocations this sample stands for   */
} zm_smp_decision;

/* Slow path of zm_smp_tick: re-arms the countdown and says what to do with
 * this allocation of size bytes; guard_ok: the caller can place it in the
 * guarded area (a plain malloc/calloc of at most ZM_GUARD_MAX bytes).
 * Initialises the thread on its first call. Reentrant: an allocation made
 * while this thread is inside the sampler (a signal handler's) is never
 * sampled. */
void zm_smp_decide(size_t size, int guard_ok, zm_smp_decision *d) ZM_SMP_HIDDEN;

/* Stack capture, starting at ret (the return address into the program's
 * allocating function) and frame (that function's frame pointer: the value
 * of rbp when the program called us). Frames are followed while they lie on
 * this thread's stack; code built without frame pointers ends the walk. */
void zm_smp_capture(zm_smp_stack *s, void *ret, void *frame) ZM_SMP_HIDDEN;

/* The caller's frame pointer, read where the public entry point was
 * entered (a macro so it reads the entry point's rbp, not a callee's). */
#if defined(__x86_64__)
#define ZM_SMP_FRAME()                                   \
    ({                                                   \
        void *fp_;                                       \
        __asm__ volatile("mov %%rbp, %0" : "=r"(fp_));   \
        fp_;                                             \
    })
#elif defined(__aarch64__)
#define ZM_SMP_FRAME()                                   \
    ({                                                   \
        void *fp_;                                       \
        __asm__ volatile("mov %0, x29" : "=r"(fp_));     \
        fp_;                                             \
    })
#else
#define ZM_SMP_FRAME() ((void *)0)
#endif

/* Filter maintenance: a sampled block became live / is gone. */
void zm_smp_filter_add(const void *p) ZM_SMP_HIDDEN;
void zm_smp_filter_remove(const void *p) ZM_SMP_HIDDEN;

/* Holding: while held, every allocation of every thread takes the slow
 * path (the countdown is armed at -1). A thread sees a change at its next
 * slow path, which the countdown brings within ZM_SMP_POLL requested bytes
 * (sample.c). The preload library starts held (nothing is fast before its
 * options are read) and stays held for its statistics; the front end holds
 * while a memory limit is set. */
void zm_smp_hold(int on) ZM_SMP_HIDDEN;
int zm_smp_held(void) ZM_SMP_HIDDEN;
/* This thread's next allocation takes the slow path (the bytes since the
 * countdown was armed still count toward its samples). */
void zm_smp_expire(void) ZM_SMP_HIDDEN;

/* Testing: reseed this thread's generator (the next draws are a fixed
 * sequence) and re-arm it. */
void zm_smp_seed(uint64_t seed) ZM_SMP_HIDDEN;
/* The configured profile interval (bytes, 0 = off) and guard rate. */
long zm_smp_prof_interval(void) ZM_SMP_HIDDEN;
long zm_smp_guard_rate(void) ZM_SMP_HIDDEN;
/* Read prof_sample, guard_sample and prof_file from the options table
 * (options.h) once; the first slow-path call does it. */
void zm_smp_configure(void) ZM_SMP_HIDDEN;

/* ---- prof.c ---------------------------------------------------------------- */

/* Record a live sample: block p of `bytes` usable bytes standing for
 * `weight` allocations. Lock-free; drops the sample when the tables are
 * full (counted, reported in the dump's header comment). */
void zm_prof_record(void *p, size_t bytes, double weight, const zm_smp_stack *s) ZM_SMP_HIDDEN;
/* p is being freed: forget it if it is a live sample (returns 1). */
int zm_prof_forget(const void *p) ZM_SMP_HIDDEN;
/* The exit-time file (ZMALLOC_PROF_FILE), NULL when none. */
void zm_prof_set_file(const char *path) ZM_SMP_HIDDEN;

/* ---- guard.c ----------------------------------------------------------------- */

/* Largest request placed in the guarded area. */
#define ZM_GUARD_MAX 8192
/* Place size bytes (1..ZM_GUARD_MAX) in the guarded area; NULL when no slot
 * is free (the caller then allocates normally). zero: calloc semantics
 * (fresh pages are zero anyway). */
void *zm_guard_alloc(size_t size, const zm_smp_stack *s) ZM_SMP_HIDDEN;
/* 1 when p lies in the guarded area. */
int zm_guard_owns(const void *p) ZM_SMP_HIDDEN;
/* The requested size of a live guarded block (its usable size). */
size_t zm_guard_size(const void *p) ZM_SMP_HIDDEN;
/* Requested bytes of all live guarded blocks. */
long long zm_guard_live_bytes(void) ZM_SMP_HIDDEN;
/* Free a guarded block (reports a double or invalid free and aborts). */
void zm_guard_free(void *p, const zm_smp_stack *s) ZM_SMP_HIDDEN;

#endif
